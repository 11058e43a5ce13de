"""Previews in worker processes: a deadline that kills, a memory cap, no starvation.

A thread cannot be stopped, so every preview (and every granule of a preview job) runs
in a worker process of :class:`WorkerPool`: at the deadline the process is killed
(SIGKILL) and a fresh one is started for the next call. ``preview_workers`` processes run
at once and ``preview_queue`` more calls may wait for one; beyond, the caller gets
:class:`Busy` at once (HTTP 503 + Retry-After) instead of hanging. Each worker caps its
address space (RLIMIT_AS, ``preview_memory_mb``), dies with the service (even after
kill -9) and sends its stdout/stderr to /dev/null: runner lines naming files never reach
the service's log. A worker keeps its loaded models between calls.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import traceback
from collections.abc import Callable
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

def _worker_main(conn: Connection, memory_mb: int, owner: int) -> None:
    """The worker loop: receive (function, args), send back ("ok", result) or a failure."""
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
            fn, args, kwargs = conn.recv()
        except (EOFError, OSError):
            return
        try:
            reply: tuple[Any, ...] = ("ok", fn(*args, **kwargs))
        except MemoryError:
            reply = ("memory", "")
        except BaseException as exc:  # noqa: BLE001 - reported to the parent, then logged
            reply = ("internal", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}")
        try:
            conn.send(reply)
        except MemoryError:
            conn.send(("memory", ""))
        except Exception as exc:  # noqa: BLE001 - e.g. a result that cannot be pickled
            conn.send(("internal", f"cannot send the result: {type(exc).__name__}: {exc}"))


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

    def call(self, deadline_s: float, fn: Callable[..., Any], args: tuple[Any, ...],
             kwargs: dict[str, Any]) -> tuple[Any, ...]:
        """(kind, payload); kind "timeout" or "lost" when the process was killed or died."""
        try:
            self.conn.send((fn, args, kwargs))
            if not self.conn.poll(deadline_s):
                self.kill()
                return ("timeout", None)
            reply: tuple[Any, ...] = self.conn.recv()
        except (EOFError, OSError, BrokenPipeError):
            self.kill()
            return ("lost", None)
        return reply


class WorkerPool:
    """``workers`` worker processes, ``queue`` waiting calls; see the module docstring."""

    def __init__(self, workers: int, queue: int, memory_mb: int,
                 wait_s: float = QUEUE_WAIT_S, start_method: str = "forkserver") -> None:
        if workers < 1:
            raise ValueError(f"preview_workers must be >= 1, got {workers}")
        if start_method not in ("forkserver", "fork", "spawn"):
            raise ValueError(f"preview_start_method must be forkserver, fork or spawn, "
                             f"got {start_method!r}")
        self.start_method = start_method
        self.workers, self.queue, self.memory_mb, self.wait_s = workers, queue, memory_mb, wait_s
        self._slots = threading.Semaphore(workers)
        self._admitted = threading.BoundedSemaphore(workers + max(0, queue))
        self._lock = threading.Lock()
        self._idle: list[_Worker] = []
        self._busy: set[_Worker] = set()
        self.killed: list[int] = []  # pids of workers killed at a deadline (for tests/ops)

    @classmethod
    def from_settings(cls, settings: Settings) -> WorkerPool:
        return cls(settings.preview_workers, settings.preview_queue,
                   settings.preview_memory_mb, start_method=settings.preview_start_method)

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

    def _take(self) -> _Worker:
        with self._lock:
            while self._idle:
                worker = self._idle.pop()
                if worker.alive():
                    self._busy.add(worker)
                    return worker
                worker.kill()
            worker = _Worker(self.memory_mb, self.start_method)
            self._busy.add(worker)
            return worker

    def _give_back(self, worker: _Worker, keep: bool) -> None:
        with self._lock:
            self._busy.discard(worker)
            if keep and worker.alive():
                self._idle.append(worker)
            else:
                worker.kill()

    def call(self, deadline_s: float, fn: Callable[..., Any], *args: Any,
             queue: bool = True, wait_s: float | None = None, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)`` in a worker, killed after ``deadline_s`` seconds.

        ``queue``: False for callers that may wait longer than the short queue allows (the
        job worker); they are not counted against ``preview_queue``.
        Raises Busy (no worker in time / queue full), Timeout, TooLarge (memory) or
        Internal (the worker raised or died; details logged with an error id).
        """
        if queue and not self._admitted.acquire(blocking=False):
            raise Busy(f"{self.workers + self.queue} previews are running or waiting "
                       "already; retry later", retry_after=RETRY_AFTER_S)
        try:
            if not self._slots.acquire(timeout=self.wait_s if wait_s is None else wait_s):
                raise Busy("no preview worker became free in time; retry later",
                           retry_after=RETRY_AFTER_S)
            try:
                worker = self._take()
                reply = worker.call(deadline_s, fn, args, kwargs)
                kind = reply[0]
                self._give_back(worker, keep=kind in ("ok", "internal"))
                if kind == "timeout":
                    if worker.pid is not None:
                        self.killed.append(worker.pid)
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
            finally:
                self._slots.release()
        finally:
            if queue:
                self._admitted.release()


def run_preview(pool: WorkerPool, settings: Settings, pipeline: str, paths: list[Path], *,
                model_version: str | None, params: dict[str, Any] | None = None,
                queue: bool = True, wait_s: float | None = None) -> PredictOutput:
    """A predict-mode run of one granule's files in the pool (:func:`epnml.rerun.predict_once`),
    its errors raised as epnml.rerun's exceptions."""
    out: dict[str, Any] = pool.call(settings.preview_timeout_s, predict_once, settings,
                                    pipeline, paths, model_version, params,
                                    queue=queue, wait_s=wait_s)
    return preview_output(out, settings, pipeline, paths)


def pool_runner(pool: WorkerPool, *, queue: bool = True,
                wait_s: float | None = None) -> PreviewRunner:
    """The pool as the :class:`epnml.rerun.PreviewRunner` of :func:`epnml.rerun.rerun`
    (``queue=False``, a long ``wait_s``: the job worker, which may wait its turn)."""

    def run(settings: Settings, pipeline: str, paths: list[Path], *,
            model_version: str | None, params: dict[str, Any]) -> PredictOutput:
        return run_preview(pool, settings, pipeline, paths, model_version=model_version,
                           params=params, queue=queue, wait_s=wait_s)

    return run
