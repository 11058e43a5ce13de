"""The preview worker pool's batching (issue #17): calls of one key waiting in the queue
run in one worker message, answers go back per call, errors and deadlines stay per call."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from epnml.api.workers import WorkerPool, worker_count
from epnml.rerun import Internal, Timeout


def _tag(value: str) -> tuple[int, str]:
    """Runs in the worker: its pid and the value (a fake preview of one request)."""
    if value == "bad":
        raise ValueError("this request's input is broken")
    if value == "slow":
        time.sleep(60)
    return os.getpid(), value


@pytest.fixture
def pool() -> Iterator[WorkerPool]:
    pool = WorkerPool(workers=1, queue=10, memory_mb=0, start_method="fork")
    pool.start()
    try:
        yield pool
    finally:
        pool.close()


def _wait(predicate: Callable[[], bool], what: str) -> None:
    limit = time.monotonic() + 60
    while not predicate():
        if time.monotonic() > limit:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def _queue_behind_blocker(pool: WorkerPool, calls: list[tuple[str, str, float]]
                          ) -> dict[int, Any]:
    """Hold the only worker with a 1.5-s call, queue ``calls`` (key, value, deadline) in
    this order while it runs, then collect each caller's result or exception."""
    results: dict[int, Any] = {}

    def run(i: int, key: str | None, value: str, deadline: float) -> None:
        try:
            results[i] = pool.call(deadline, _tag, value, batch_key=key)
        except Exception as exc:  # noqa: BLE001 - the test inspects it
            results[i] = exc

    blocker = threading.Thread(target=lambda: pool.call(60, time.sleep, 1.5))
    blocker.start()
    _wait(lambda: bool(pool._busy), "the blocker to run")
    threads = []
    for i, (key, value, deadline) in enumerate(calls):
        t = threading.Thread(target=run, args=(i, key, value, deadline))
        t.start()
        threads.append(t)
        _wait(lambda n=i + 1: len(pool._pending) == n, f"call {i} to queue")  # type: ignore[misc]
    for t in [blocker, *threads]:
        t.join(120)
    assert len(results) == len(calls)
    return results


def test_waiting_calls_of_one_key_run_in_one_batch_in_queue_order(pool: WorkerPool) -> None:
    results = _queue_behind_blocker(pool, [("icme", "a1", 60), ("pits", "b1", 60),
                                           ("icme", "a2", 60), ("icme", "a3", 60),
                                           ("pits", "b2", 60)])
    # the blocker alone, then the oldest key's three calls, then the other key's two
    assert pool.batches == [1, 3, 2]
    assert [results[i][1] for i in range(5)] == ["a1", "b1", "a2", "a3", "b2"]
    pids = {results[i][0] for i in range(5)}
    assert len(pids) == 1  # the same worker, never killed
    assert pool.killed == []


def test_calls_without_a_key_are_never_batched(pool: WorkerPool) -> None:
    results = _queue_behind_blocker(pool, [(None, "x", 60), (None, "y", 60)])  # type: ignore[list-item]
    assert pool.batches == [1, 1, 1]
    assert [results[0][1], results[1][1]] == ["x", "y"]


def test_a_failing_call_fails_alone_in_its_batch(pool: WorkerPool,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    results = _queue_behind_blocker(pool, [("icme", "a1", 60), ("icme", "bad", 60),
                                           ("icme", "a3", 60)])
    assert pool.batches == [1, 3]
    assert results[0][1] == "a1" and results[2][1] == "a3"
    assert isinstance(results[1], Internal)
    assert "ValueError: this request's input is broken" in caplog.text
    assert results[0][0] == results[2][0]  # the worker survived the failure
    assert pool.killed == []


def test_a_deadline_kills_only_its_call_and_the_rest_runs_in_a_fresh_worker(
        pool: WorkerPool) -> None:
    results = _queue_behind_blocker(pool, [("icme", "a1", 60), ("icme", "slow", 2),
                                           ("icme", "a3", 60)])
    assert results[0][1] == "a1" and results[2][1] == "a3"
    assert isinstance(results[1], Timeout)
    assert str(results[1]) == ("the preview did not finish within 2 s (preview_timeout_s) "
                               "and was stopped; try a smaller input")
    first_pid = results[0][0]
    assert pool.killed == [first_pid]  # the worker that ran "slow" (and a1) was killed
    assert results[2][0] != first_pid
    # the batch of 3, then the call not yet run (a3) sent again to a fresh worker
    assert pool.batches == [1, 3, 1]


def test_worker_count_is_the_cores_of_this_process_unless_set() -> None:
    assert worker_count(0) == len(os.sched_getaffinity(0))
    assert worker_count(3) == 3
    with pytest.raises(ValueError, match=r"preview_workers must be >= 0 \(0 = one per core\)"):
        worker_count(-1)


def test_preview_batch_of_one_turns_batching_off() -> None:
    pool = WorkerPool(workers=1, queue=10, memory_mb=0, start_method="fork", max_batch=1)
    pool.start()  # from this thread: a forked worker dies with the thread that forked it
    try:
        results = _queue_behind_blocker(pool, [("icme", "a1", 60), ("icme", "a2", 60),
                                               ("icme", "a3", 60)])
    finally:
        pool.close()
    assert pool.batches == [1, 1, 1, 1]
    assert [results[i][1] for i in range(3)] == ["a1", "a2", "a3"]
    with pytest.raises(ValueError, match="preview_batch must be >= 1, got 0"):
        WorkerPool(workers=1, queue=0, memory_mb=0, max_batch=0)


def test_the_service_does_not_batch_by_default() -> None:
    """Measured on free cores, batches only made calls wait (docs/benchmarks.md): the
    service's pool runs one call per worker message unless ``preview_batch`` says more."""
    from epnml.config import Settings

    assert Settings().preview_batch == 1
    assert WorkerPool.from_settings(Settings()).max_batch == 1
    assert WorkerPool.from_settings(Settings(preview_batch=8)).max_batch == 8
