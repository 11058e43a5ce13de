"""Previews in worker processes: a deadline that kills, a memory cap, no starvation,
same-model requests batched.

A thread cannot be stopped, so every preview (and every granule of a preview job) runs
in a worker process of :class:`WorkerPool`: at the deadline the process is killed
(SIGKILL) and a fresh one is started for the next call. ``preview_workers`` processes run
at once (0, the default: one per core this process may use, :func:`worker_count`) and
``preview_queue`` more calls may wait for one; beyond, the caller gets :class:`Busy` at
once (HTTP 503 + Retry-After) instead of hanging. Each worker caps its address space
(RLIMIT_AS, ``preview_memory_mb``), dies with the service (even after kill -9) and sends
its stdout/stderr to /dev/null: runner lines naming files never reach the service's log.
A worker keeps its loaded models between calls.

Batching: calls given the same ``batch_key`` (previews: pipeline + requested model
version) that wait in the queue when a worker becomes free are sent to it in ONE message
(at most ``preview_batch``, oldest call first, FIFO across keys) and run there one after the
other with the model loaded once (preferably by a worker that already holds it). Each
answer goes back to its own caller as soon as it is ready; every call keeps its own
deadline, counted from when the worker starts it, and its own errors: a call that fails
fails alone, and a call killed at its deadline takes only itself down -- the calls of the
batch not yet run go to a fresh worker.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from epnml.config import Settings
from epnml.rerun import (
    Busy,
    Internal,
    PredictOutput,
    PreviewRunner,
    Timeout,
    TooLarge,
    predict_once,
    preview_output,
)
from epnml.safety import log_internal

#: seconds a call waits for a free worker before 503.
QUEUE_WAIT_S = 30.0
#: Retry-After (seconds) of a 503 answered because the queue is full.
RETRY_AFTER_S = 10
#: most calls sent to a worker in one batch when a pool is built without ``max_batch``
#: (the service's ``preview_batch`` default is 1: no batching).
MAX_BATCH = 8


def worker_count(configured: int) -> int:
    """``preview_workers``: the configured number, or for 0 the cores this process may run
    on (``os.sched_getaffinity``: a cgroup/taskset limit counts, not the host's cores)."""
    if configured > 0:
        return configured
    if configured < 0:
        raise ValueError(f"preview_workers must be >= 0 (0 = one per core), got {configured}")
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _run_one(fn: Callable[..., Any], args: tuple[Any, ...],
             kwargs: dict[str, Any]) -> tuple[Any, ...]:
    try:
        return ("ok", fn(*args, **kwargs))
    except MemoryError:
        return ("memory", "")
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, then logged
        return ("internal", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}")


def _worker_main(conn: Connection, memory_mb: int, owner: int) -> None:
    """The worker loop: receive a batch [(function, args, kwargs), ...], send back one
    ("ok", result) or failure per call, each as soon as it is done."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    from epnml.ingest.executor import die_with_parent

    die_with_parent(owner)
    if memory_mb > 0:
        import resource

        limit = memory_mb * 1024 * 1024
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard != resource.RLIM_INFINITY:  # never above what the service itself may use
            limit = min(limit, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    try:  # load the runner (torch, pandas) now rather than within the first deadline
        import epnml.ingest.runner  # noqa: F401
    except Exception:  # noqa: BLE001 - the first call reports it
        pass
    while True:
        try:
            batch = conn.recv()
        except (EOFError, OSError):
            return
        for fn, args, kwargs in batch:
            reply = _run_one(fn, args, kwargs)
            try:
                conn.send(reply)
            except MemoryError:
                conn.send(("memory", ""))
            except Exception as exc:  # noqa: BLE001 - e.g. a result that cannot be pickled
                conn.send(("internal", f"cannot send the result: {type(exc).__name__}: {exc}"))


@dataclass(eq=False)
class _Call:
    """One caller's call, waiting, running (``taken``) or answered (``reply``)."""

    fn: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    deadline_s: float
    key: Hashable | None
    taken: bool = False
    reply: tuple[Any, ...] | None = None
    worker_pid: int | None = None
    started: float = field(default=0.0)


class _Worker:
    def __init__(self, memory_mb: int, start_method: str = "forkserver") -> None:
        # forkserver: a clean process, safe beside the service's threads; "fork" (tests
        # that start many short-lived apps) reuses the caller's loaded modules.
        ctx = multiprocessing.get_context(start_method)
        self.conn, child = ctx.Pipe()
        self.process: BaseProcess = ctx.Process(  # type: ignore[attr-defined]
            target=_worker_main, args=(child, memory_mb, os.getpid()),
            name="epnml-preview", daemon=True)
        self.process.start()
        child.close()
        self.keys: set[Hashable] = set()  # batch keys it ran (their models are loaded)

    @property
    def pid(self) -> int | None:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.is_alive()

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(5)
        self.conn.close()

    def run(self, calls: list[_Call], answer: Callable[[_Call, tuple[Any, ...]], None]) -> int:
        """Send ``calls`` in one message; ``answer`` each reply as it comes. Returns how many
        were answered; stops after a reply that leaves the worker unusable (then killed):
        "timeout" (its deadline passed), "lost" (the process died) or "memory"."""
        try:
            self.conn.send([(c.fn, c.args, c.kwargs) for c in calls])
        except (EOFError, OSError, BrokenPipeError):
            self.kill()
            answer(calls[0], ("lost", None))
            return 1
        for n, call in enumerate(calls, 1):
            call.worker_pid, call.started = self.pid, time.monotonic()
            try:
                if not self.conn.poll(call.deadline_s):
                    self.kill()
                    answer(call, ("timeout", None))
                    return n
                reply: tuple[Any, ...] = self.conn.recv()
            except (EOFError, OSError, BrokenPipeError):
                self.kill()
                answer(call, ("lost", None))
                return n
            answer(call, reply)
            if reply[0] not in ("ok", "internal"):
                self.kill()
                return n
        return len(calls)


class WorkerPool:
    """``workers`` worker processes, ``queue`` waiting calls; see the module docstring."""

    def __init__(self, workers: int, queue: int, memory_mb: int,
                 wait_s: float = QUEUE_WAIT_S, start_method: str = "forkserver",
                 max_batch: int = MAX_BATCH) -> None:
        if workers < 1:
            raise ValueError(f"preview_workers must be >= 1, got {workers}")
        if start_method not in ("forkserver", "fork", "spawn"):
            raise ValueError(f"preview_start_method must be forkserver, fork or spawn, "
                             f"got {start_method!r}")
        self.start_method = start_method
        self.workers, self.queue, self.memory_mb, self.wait_s = workers, queue, memory_mb, wait_s
        if max_batch < 1:
            raise ValueError(f"preview_batch must be >= 1, got {max_batch}")
        self.max_batch = max_batch
        self._admitted = threading.BoundedSemaphore(workers + max(0, queue))
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._pending: deque[_Call] = deque()
        self._running = 0  # batches being run (at most ``workers``)
        self._idle: list[_Worker] = []
        self._busy: set[_Worker] = set()
        self.killed: list[int] = []  # pids of workers killed at a deadline (for tests/ops)
        self.batches: list[int] = []  # size of every batch sent to a worker (for tests/ops)

    @classmethod
    def from_settings(cls, settings: Settings) -> WorkerPool:
        return cls(worker_count(settings.preview_workers), settings.preview_queue,
                   settings.preview_memory_mb, start_method=settings.preview_start_method,
                   max_batch=settings.preview_batch)

    def start(self) -> None:
        """Start the worker processes now (they import the runner while nobody waits)."""
        with self._lock:
            while len(self._idle) + len(self._busy) < self.workers:
                self._idle.append(_Worker(self.memory_mb, self.start_method))

    def close(self) -> None:
        with self._lock:
            for worker in [*self._idle, *self._busy]:
                worker.kill()
            self._idle.clear()
            self._busy.clear()

    def _take(self, key: Hashable | None) -> _Worker:
        """An idle worker, one that already ran ``key`` (has its model) first."""
        with self._lock:
            self._idle.sort(key=lambda w: key is not None and key in w.keys)
            while self._idle:
                worker = self._idle.pop()
                if worker.alive():
                    self._busy.add(worker)
                    return worker
                worker.kill()
            worker = _Worker(self.memory_mb, self.start_method)
            self._busy.add(worker)
            return worker

    def _give_back(self, worker: _Worker) -> None:
        with self._lock:
            self._busy.discard(worker)
            if worker.alive():
                self._idle.append(worker)
            else:
                worker.kill()

    def _next_batch(self) -> list[_Call]:
        """The oldest waiting call and the waiting calls of its key (lock held)."""
        head = self._pending.popleft()
        batch = [head]
        if head.key is not None:
            for call in list(self._pending):
                if len(batch) >= self.max_batch:
                    break
                if call.key == head.key:
                    self._pending.remove(call)
                    batch.append(call)
        for call in batch:
            call.taken = True
        return batch

    def _answer(self, call: _Call, reply: tuple[Any, ...]) -> None:
        with self._changed:
            call.reply = reply
            if reply[0] == "timeout" and call.worker_pid is not None:
                self.killed.append(call.worker_pid)
            self._changed.notify_all()

    def _run_batch(self, batch: list[_Call]) -> None:
        """Run ``batch``; after a worker is lost, the calls not yet run go to a fresh one."""
        todo = batch
        try:
            while todo:
                worker = self._take(todo[0].key)
                self.batches.append(len(todo))
                try:
                    done = worker.run(todo, self._answer)
                finally:
                    if todo[0].key is not None:
                        worker.keys.add(todo[0].key)
                    self._give_back(worker)
                todo = todo[done:]
        finally:
            for call in batch:  # never leave a caller waiting (e.g. a worker failed to start)
                if call.reply is None:
                    self._answer(call, ("lost", None))

    def _submit(self, call: _Call, wait_s: float) -> tuple[Any, ...]:
        """Queue ``call``; the caller's thread runs batches (its own or older ones) while
        a worker slot is free, until its call is answered."""
        limit = time.monotonic() + wait_s
        with self._changed:
            self._pending.append(call)
        while True:
            with self._changed:
                while True:
                    if call.reply is not None:
                        return call.reply
                    # only a caller still waiting runs a batch (the oldest one): a
                    # caller whose call is taken returns as soon as it is answered
                    if not call.taken and self._running < self.workers:
                        batch = self._next_batch()
                        self._running += 1
                        break
                    if not call.taken:
                        remaining = limit - time.monotonic()
                        if remaining <= 0:
                            self._pending.remove(call)
                            raise Busy("no preview worker became free in time; retry later",
                                       retry_after=RETRY_AFTER_S)
                        self._changed.wait(remaining)
                    else:
                        self._changed.wait()
            try:
                self._run_batch(batch)
            finally:
                with self._changed:
                    self._running -= 1
                    self._changed.notify_all()

    def call(self, deadline_s: float, fn: Callable[..., Any], *args: Any,
             queue: bool = True, wait_s: float | None = None,
             batch_key: Hashable | None = None, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)`` in a worker, killed after ``deadline_s`` seconds.

        ``queue``: False for callers that may wait longer than the short queue allows (the
        job worker); they are not counted against ``preview_queue``. ``batch_key``: calls
        with the same key may run in one batch (see the module docstring); None: alone.
        Raises Busy (no worker in time / queue full), Timeout, TooLarge (memory) or
        Internal (the worker raised or died; details logged with an error id).
        """
        if queue and not self._admitted.acquire(blocking=False):
            raise Busy(f"{self.workers + self.queue} previews are running or waiting "
                       "already; retry later", retry_after=RETRY_AFTER_S)
        try:
            reply = self._submit(_Call(fn, args, kwargs, deadline_s, batch_key),
                                 self.wait_s if wait_s is None else wait_s)
        finally:
            if queue:
                self._admitted.release()
        kind = reply[0]
        if kind == "timeout":
            raise Timeout(f"the preview did not finish within {deadline_s:g} s "
                          "(preview_timeout_s) and was stopped; try a smaller input")
        if kind == "memory":
            raise TooLarge(f"the input needs more memory than a preview may use "
                           f"({self.memory_mb} MB, preview_memory_mb)")
        if kind == "lost":
            raise Internal(log_internal("preview worker",
                                        "the worker process died (killed or crashed)"))
        if kind == "internal":
            raise Internal(log_internal("preview worker", str(reply[1])))
        return reply[1]


def run_preview(pool: WorkerPool, settings: Settings, pipeline: str, paths: list[Path], *,
                model_version: str | None, params: dict[str, Any] | None = None,
                queue: bool = True, wait_s: float | None = None,
                granule_id: str | None = None) -> PredictOutput:
    """A predict-mode run of one granule's files in the pool (:func:`epnml.rerun.predict_once`),
    its errors raised as epnml.rerun's exceptions."""
    out: dict[str, Any] = pool.call(settings.preview_timeout_s, predict_once, settings,
                                    pipeline, paths, model_version, params, granule_id,
                                    queue=queue, wait_s=wait_s,
                                    batch_key=("predict", pipeline, model_version))
    return preview_output(out, settings, pipeline, paths)


def pool_runner(pool: WorkerPool, *, queue: bool = True,
                wait_s: float | None = None) -> PreviewRunner:
    """The pool as the :class:`epnml.rerun.PreviewRunner` of :func:`epnml.rerun.rerun`
    (``queue=False``, a long ``wait_s``: the job worker, which may wait its turn)."""

    def run(settings: Settings, pipeline: str, paths: list[Path], *,
            model_version: str | None, params: dict[str, Any],
            granule_id: str | None = None) -> PredictOutput:
        return run_preview(pool, settings, pipeline, paths, model_version=model_version,
                           params=params, queue=queue, wait_s=wait_s, granule_id=granule_id)

    return run
