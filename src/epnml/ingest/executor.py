"""Executors run a stage over granules: in-process, local worker processes, or Dask.

Workers build the stage themselves from the pipeline registry (by name), so
only small, picklable arguments cross process boundaries and the same run can
be handed to a Dask distributed cluster unchanged.
"""

from __future__ import annotations

import copy
import ctypes
import hashlib
import json
import multiprocessing
import os
import re
import select
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any, Protocol

from epnml.ingest.stage import (
    Granule,
    GranuleError,
    RunContext,
    Stage,
    StageOutput,
    printable,
)

_STAGES: dict[tuple[str, str | None, str], Stage] = {}
#: models loaded by this process, per (pipeline, model version asked): each key should
#: count 1 in a worker however many granules it ran (read by tests through Client.run).
_LOADS: Counter[tuple[str, str | None]] = Counter()


def stage_loads() -> dict[tuple[str, str | None], int]:
    """How often this process built each stage (loaded its model)."""
    return dict(_LOADS)


def get_stage(pipeline: str, model_version: str | None,
              params: dict[str, Any] | None = None) -> Stage:
    """Build a stage once per process: models load once, not once per granule.

    ``params`` are validated ones (:func:`epnml.ingest.spec.validate_params`); its model
    parameters that differ from the default make the stage report a derived model version
    (:func:`params_version_suffix`), so its rows form a version of their own: committing
    them supersedes the default rows instead of replacing them. Operational parameters
    and explicit defaults derive nothing.
    """
    from epnml.ingest.registry import make_stage
    from epnml.ingest.spec import version_params

    suffix = params_version_suffix(version_params(pipeline, params, model_version)) \
        if params else ""
    key = (pipeline, model_version, suffix)
    if key not in _STAGES:
        base_key = (pipeline, model_version, "")
        if base_key not in _STAGES:
            _STAGES[base_key] = make_stage(pipeline, model_version)
            _LOADS[(pipeline, model_version)] += 1
        if suffix:
            clone = copy.copy(_STAGES[base_key])  # shares the loaded model
            clone.version_suffix = suffix  # model_info() and every row carry it
            _STAGES[key] = clone
    return _STAGES[key]


def params_version_suffix(params: dict[str, Any]) -> str:
    """``{"threshold": 0.7}`` -> ``"+threshold-0.7"``: a version-string-safe, readable tag."""
    if not params:
        return ""
    parts = []
    for name in sorted(params):
        value = params[name]
        text = f"{value:g}" if isinstance(value, float | int) else str(value)
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,40}", name) or \
                not re.fullmatch(r"[A-Za-z0-9.-]{1,40}", text):
            digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()
            return "+p" + digest[:10]
        parts.append(f"{name}-{text}")
    return "+" + "_".join(parts)


@dataclass
class GranuleResult:
    granule: Granule
    output: StageOutput | None
    error: str | None
    seconds: float
    #: what failed: ``input`` (bad file), ``limit`` (LimitExceeded), ``memory`` or
    #: ``internal`` (a bug); the CLI exits 2 on a limit, the HTTP service answers 413.
    kind: str | None = None
    #: set when the worker that computed the granule also wrote it (Dask ingest): its
    #: ``GranuleReport``, already committed with the rows; the caller only reports it.
    report: Any = None


#: writes one granule where it was computed (runner.WorkerWrite): (result, source) -> report.
GranuleWriter = Callable[[GranuleResult, Any], Any]


def run_granule(pipeline: str, model_version: str | None, granule: Granule, ctx: RunContext,
                write: GranuleWriter | None = None, source: Any = None) -> GranuleResult:
    """A granule computed and, with ``write``, written in this same process."""
    result = process_granule(pipeline, model_version, granule, ctx)
    if write is not None:
        result.report = write(result, source)
    return result


def error_kind(exc: BaseException) -> str:
    """The failure class of a granule's exception (see GranuleResult.kind)."""
    from epnml.ingest.limits import LimitExceeded

    if isinstance(exc, LimitExceeded):
        return "limit"
    if isinstance(exc, MemoryError):
        return "memory"
    if isinstance(exc, GranuleError | ValueError | OSError | RuntimeError):
        return "input"
    return "internal"


def process_granule(
    pipeline: str, model_version: str | None, granule: Granule, ctx: RunContext
) -> GranuleResult:
    """Run one granule; errors are returned (with file and reason), never raised.

    Every exception fails the granule (a reader bug is a failed granule, not a stopped
    run nor 0 rows); unexpected types are named so they can be told from bad input.
    """
    t0 = time.perf_counter()
    try:
        output = get_stage(pipeline, model_version, ctx.params).process(granule, ctx)
    except Exception as exc:  # noqa: BLE001 - the error is the granule's result
        return GranuleResult(granule, None, granule_error_text(granule, exc),
                             time.perf_counter() - t0, error_kind(exc))
    if output is None:
        return GranuleResult(granule, None, f"{granule.label}: the stage returned nothing",
                             time.perf_counter() - t0, "internal")
    return GranuleResult(granule, output, None, time.perf_counter() - t0)


def granule_error_text(granule: Granule, exc: BaseException) -> str:
    """One printable line: the message of bad-input errors, the type of anything else."""
    if isinstance(exc, GranuleError | ValueError | OSError | RuntimeError):
        text = str(exc) or type(exc).__name__
    else:
        text = f"{granule.label}: unexpected {type(exc).__name__}: {exc}"
    return printable(text)


class Executor(Protocol):
    def map_granules(
        self, pipeline: str, model_version: str | None, granules: Sequence[Granule],
        ctx: RunContext, write: GranuleWriter | None = None,
        sources: Mapping[str, Any] | None = None,
    ) -> Iterator[GranuleResult]: ...

    def close(self) -> None: ...


class InlineExecutor:
    """One granule after the other in this process (workers=1; easiest to debug)."""

    def map_granules(self, pipeline: str, model_version: str | None,
                     granules: Sequence[Granule], ctx: RunContext,
                     write: GranuleWriter | None = None,
                     sources: Mapping[str, Any] | None = None) -> Iterator[GranuleResult]:
        for granule in granules:
            yield run_granule(pipeline, model_version, granule, ctx, write,
                              (sources or {}).get(granule.granule_id))

    def close(self) -> None:
        pass


def _limit_threads(threads: int) -> None:
    """Cap torch's intra-op threads (set before any model runs)."""
    import torch

    torch.set_num_threads(threads)


_PR_SET_PDEATHSIG = 1


def _proc_start(pid: int) -> str | None:
    """The process's start time (/proc), None once it is gone or a zombie."""
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] in {"Z", "X"} else fields[19]


def die_with_parent(owner: int | None = None, poll_s: float = 0.5) -> None:
    """End this worker process when its parent or ``owner`` ends (even by kill -9).

    Linux: the kernel sends SIGKILL when the parent dies (prctl PR_SET_PDEATHSIG). With
    the forkserver the parent is the fork server, which itself waits for its workers, so
    a daemon thread also watches ``owner`` (the process that made the pool: a pidfd when
    the kernel has them, else /proc polling) and exits when it ends or the worker is
    re-parented (getppid changes; the portable fallback).
    """
    parent = os.getppid()
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        except (OSError, AttributeError):
            pass  # the watchdog below still applies
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)
    owner_start = _proc_start(owner) if owner is not None else None
    pidfd = None
    if owner is not None and hasattr(os, "pidfd_open"):
        try:
            pidfd = os.pidfd_open(owner)
        except OSError:
            os._exit(1)  # the owner is already gone

    def watch() -> None:
        while True:
            if pidfd is not None:
                ready, _, _ = select.select([pidfd], [], [], poll_s)
                if ready:
                    os._exit(1)
            else:
                time.sleep(poll_s)
            if os.getppid() != parent:
                os._exit(1)
            if owner is not None and pidfd is None and owner_start is not None \
                    and _proc_start(owner) != owner_start:
                os._exit(1)

    threading.Thread(target=watch, name="epnml-parent-watchdog", daemon=True).start()


def _init_worker(threads: int, owner: int) -> None:
    """Worker initializer: die with the process that made the pool, cap torch's threads."""
    die_with_parent(owner)
    _limit_threads(threads)


class LocalExecutor:
    """Local worker processes (forkserver: torch does not survive fork with threads)."""

    def __init__(self, workers: int) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        # one process per core: threads beyond the cores only contend (measured on 2 cores:
        # the crossings network runs 10x slower with 2 threads in each of 2 workers).
        threads = max(1, (os.cpu_count() or 1) // workers)
        self._pool = ProcessPoolExecutor(
            max_workers=workers, mp_context=multiprocessing.get_context("forkserver"),
            initializer=_init_worker, initargs=(threads, os.getpid()),
        )

    def map_granules(self, pipeline: str, model_version: str | None,
                     granules: Sequence[Granule], ctx: RunContext,
                     write: GranuleWriter | None = None,
                     sources: Mapping[str, Any] | None = None) -> Iterator[GranuleResult]:
        futures: dict[Future[GranuleResult], Granule] = {
            self._pool.submit(run_granule, pipeline, model_version, g, ctx, write,
                              (sources or {}).get(g.granule_id)): g
            for g in granules
        }
        for future in as_completed(futures):
            yield _result(future, futures[future])

    def close(self) -> None:
        self._pool.shutdown(cancel_futures=True)


def _result(future: Any, granule: Granule) -> GranuleResult:
    """The future's result; a lost worker (killed, out of memory) fails only its granule."""
    try:
        result: GranuleResult = future.result()
    except Exception as exc:  # noqa: BLE001 - BrokenProcessPool, a dask worker lost...
        return GranuleResult(granule, None,
                             printable(f"{granule.label}: worker failed: {_name(exc)}"), 0.0,
                             "internal")
    return result


def _name(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _dask_task(pipeline: str, model_version: str | None, granule: Granule, ctx: RunContext,
               write: GranuleWriter | None, source: Any) -> GranuleResult:
    """One granule on a Dask worker: torch capped at the worker's threads, then run_granule."""
    _cap_threads_to_dask_worker()
    return run_granule(pipeline, model_version, granule, ctx, write, source)


_CAPPED = False


def _cap_threads_to_dask_worker() -> None:
    """A worker of N threads runs torch on N threads (not all the host's cores)."""
    global _CAPPED
    if _CAPPED:
        return
    try:
        from distributed import get_worker

        _limit_threads(max(1, int(get_worker().state.nthreads)))
    except (ImportError, ValueError, AttributeError):
        pass  # not on a worker (tests calling it directly): leave torch as it is
    _CAPPED = True


#: filesystem types whose files every host of a cluster sees alike (no locality to use).
NETWORK_FILESYSTEMS = frozenset({
    "nfs", "nfs4", "cifs", "smb3", "smbfs", "ceph", "cephfs", "lustre", "gpfs", "beegfs",
    "glusterfs", "fuse.glusterfs", "fuse.sshfs", "fuse.s3fs", "fuse.gcsfuse", "fuse.juicefs",
    "9p", "virtiofs", "afs", "panfs", "orangefs", "wekafs",
})


def _mounts() -> list[tuple[str, str]]:
    """(mount point, filesystem type) of this host, longest mount point first."""
    out: list[tuple[str, str]] = []
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                left, _, right = line.partition(" - ")
                fields, rest = left.split(), right.split()
                if len(fields) >= 5 and rest:
                    point = fields[4].replace("\\040", " ")
                    out.append((point, rest[0]))
    except OSError:  # not Linux: no locality information, every file counts as shared
        return []
    return sorted(out, key=lambda m: len(m[0]), reverse=True)


def probe_inputs(paths: Sequence[str]) -> dict[str, tuple[bool, bool, int]]:
    """Run on each Dask worker: per path, (readable here, on a local disk of this host,
    size in bytes). A file on a network filesystem is readable but not local."""
    mounts = _mounts()
    out: dict[str, tuple[bool, bool, int]] = {}
    for path in paths:
        try:
            real = os.path.realpath(path)
            size = os.stat(real).st_size
            readable = os.access(real, os.R_OK)
        except OSError:
            out[path] = (False, False, 0)
            continue
        fstype = next((t for point, t in mounts
                       if real == point or real.startswith(point.rstrip("/") + "/")), "")
        out[path] = (readable, bool(fstype) and fstype not in NETWORK_FILESYSTEMS, size)
    return out


@dataclass(frozen=True)
class LocalityPlan:
    """Where one granule may run (Dask ``submit`` arguments), or why it cannot."""

    workers: list[str] | None
    allow_other_workers: bool
    priority: int
    error: str | None = None


def plan_locality(granules: Sequence[Granule],
                  probes: Mapping[str, Mapping[str, tuple[bool, bool, int]]],
                  ) -> dict[str, LocalityPlan]:
    """Each granule's placement from the workers' :func:`probe_inputs` answers.

    No hint when every worker holds every file alike (a shared filesystem, or one host):
    the scheduler balances. Priority: the granule's size in bytes (larger first)."""
    plans: dict[str, LocalityPlan] = {}
    everyone = sorted(probes)
    for g in granules:
        files = [os.fspath(p) for p in g.paths]
        readers = [w for w in everyone if all(probes[w].get(f, (False,))[0] for f in files)]
        local = [w for w in readers if all(probes[w][f][1] for f in files)]
        size = max((probes[w][f][2] for w in readers for f in files), default=0)
        if everyone and not readers:
            unread = next(f for f in files if not any(probes[w].get(f, (False,))[0]
                                                      for w in everyone))
            plans[g.granule_id] = LocalityPlan(
                None, True, 0,
                printable(f"{unread}: no Dask worker can read this file (missing, or not on "
                          f"the workers' filesystem)"))
        elif len(readers) < len(everyone):
            plans[g.granule_id] = LocalityPlan(readers, False, size)
        elif local and len(local) < len(everyone):
            plans[g.granule_id] = LocalityPlan(local, True, size)
        else:
            plans[g.granule_id] = LocalityPlan(None, True, size)
    return plans


class DaskExecutor:
    """Hand granules to a Dask distributed scheduler (``tcp://host:8786``).

    Each task runs one granule on a worker (the stage, hence the model, is built once per
    worker process: :func:`get_stage`); with ``write`` (ingest) the same worker also writes
    the granule's rows and its ``granule_runs`` record in one transaction of its own, so the
    client only reports. Inputs are read by the workers from their paths, so the workers
    must reach the database and see the files (a shared filesystem, or node-local disks).

    Data locality (:func:`plan_locality`): before submitting, every worker reports which
    input files it can read and which of those sit on a local disk of its host; a granule
    goes to the workers that hold all its files locally when some do (others may still
    take it), only to the workers that can read it when not all can, and fails at once,
    naming the file, when none can. Larger granules are given a higher priority, so the
    run does not end waiting for one big granule started last.
    """

    def __init__(self, address: str) -> None:
        try:
            from distributed import Client
        except ImportError as exc:  # optional dependency
            raise RuntimeError("the dask executor needs `pip install epnml[dask]`") from exc
        try:
            self._client: Any = Client(address, timeout=30)
        except OSError as exc:
            raise RuntimeError(f"cannot reach the Dask scheduler {printable(address)}: "
                               f"{_name(exc)}") from exc

    def map_granules(self, pipeline: str, model_version: str | None,
                     granules: Sequence[Granule], ctx: RunContext,
                     write: GranuleWriter | None = None,
                     sources: Mapping[str, Any] | None = None) -> Iterator[GranuleResult]:
        from distributed import as_completed as dask_as_completed

        paths = sorted({os.fspath(p) for g in granules for p in g.paths})
        probes: dict[str, dict[str, tuple[bool, bool, int]]] = (
            self._client.run(probe_inputs, paths) if paths else {})
        plans = plan_locality(granules, probes)
        futures = {}
        for k, g in enumerate(granules):
            plan = plans[g.granule_id]
            if plan.error:
                yield GranuleResult(g, None, plan.error, 0.0, "input")
                continue
            # pure=False: a granule is run each time it is asked (a new run, new rows), and
            # every task is its own key, so a failure fails that granule only
            where = {} if plan.workers is None else {
                "workers": plan.workers, "allow_other_workers": plan.allow_other_workers}
            futures[self._client.submit(
                _dask_task, pipeline, model_version, g, ctx, write,
                (sources or {}).get(g.granule_id), pure=False, key=f"epnml-{ctx.run_id}-{k}",
                priority=plan.priority, **where)] = g
        for future in dask_as_completed(list(futures)):
            yield _result(future, futures[future])

    def close(self) -> None:
        # releasing the futures cancels granules not started; started ones finish (and,
        # when ingesting, commit their rows and records: counted in the run's totals)
        self._client.close()


def make_executor(kind: str, workers: int, scheduler: str | None = None) -> Executor:
    if kind == "local":
        return InlineExecutor() if workers == 1 else LocalExecutor(workers)
    if kind == "dask":
        if not scheduler:
            raise ValueError("--executor dask needs --scheduler tcp://HOST:PORT")
        return DaskExecutor(scheduler)
    raise ValueError(f"unknown executor {kind!r}; use local or dask")
