"""Run a pipeline over files: ``predict`` (no database) or ``ingest`` (PostgreSQL).

The CLI and the HTTP service both call :func:`run_pipeline`.

Ingest bookkeeping: the run is recorded (``epnml.runs``: status, host, boot id, pid) before
any granule; each granule's ``granule_runs`` record and the run's counts commit in the SAME
transaction as its rows, so after a crash the counts are the committed ones and
:func:`epnml.db.sweep_runs` (called at the start of every ingest) closes the run as
``aborted``. Input paths are made absolute before grouping; every failure of a granule
(grouping, reading, inference, writing) is a failed granule, never 0 rows, and with
``keep_going`` never stops the run. Granule identity and the version rule: see
:mod:`epnml.ingest.writer`.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from tqdm import tqdm

from epnml.config import Settings, datalink_url, files_url
from epnml.ingest.executor import GranuleResult, get_stage, make_executor
from epnml.ingest.stage import Granule, GranuleError, RunContext, Stage, printable
from epnml.schemas.products import get_product

Mode = Literal["predict", "ingest"]


class RunFailed(RuntimeError):
    """A granule failed and the run was not asked to keep going."""

    def __init__(self, message: str, kind: str | None = None) -> None:
        super().__init__(message)
        #: the granule's failure class (GranuleResult.kind): ``limit`` -> CLI exit 2.
        self.kind = kind


@dataclass
class GranuleReport:
    granule_id: str
    files: str
    status: str
    n_rows: int = 0
    n_superseded: int = 0
    error: str | None = None
    seconds: float = 0.0
    #: why the granule got another obs_id than its file name gives (identity rule).
    renamed_from: str | None = None
    #: False: an older model version, its rows stored already superseded.
    current: bool = True
    #: failure class of a failed granule (GranuleResult.kind).
    kind: str | None = None


@dataclass
class RunSummary:
    run_id: str
    pipeline: str
    mode: Mode
    model_version: str
    granules: list[GranuleReport] = field(default_factory=list)
    records: pd.DataFrame = field(default_factory=pd.DataFrame)
    #: the product-table rows (EPN-TAP columns), kept when asked (previews).
    rows: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    #: runs of dead processes closed as aborted before this one started.
    swept: list[str] = field(default_factory=list)
    #: other inputs of the run (Stage.run_inputs: catalogue names and sha256), also in
    #: ``epnml.runs.inputs``.
    inputs: dict[str, Any] = field(default_factory=dict)

    @property
    def n_failed(self) -> int:
        return sum(g.status == "failed" for g in self.granules)

    @property
    def n_rows(self) -> int:
        return sum(g.n_rows for g in self.granules)

    def text(self) -> str:
        ok = len(self.granules) - self.n_failed
        lines = [
            f"run {self.run_id} ({self.pipeline}, {self.mode}, model {self.model_version}): "
            f"{ok} granule(s) ok, {self.n_failed} failed, {self.n_rows} row(s), "
            f"{sum(g.n_superseded for g in self.granules)} superseded, {self.seconds:.1f} s"
        ]
        lines += [f"  closed run {r} of a process that is gone: aborted" for r in self.swept]
        if self.inputs.get("catalogue_match"):
            lines.append(f"  {self.inputs['catalogue_match']}: catalogue cross-match columns "
                         "left empty")
        lines += [f"  NEW ID {g.files}: obs_id {g.renamed_from} belongs to other source data; "
                  f"stored as {g.granule_id}" for g in self.granules if g.renamed_from]
        lines += [f"  NOT CURRENT {g.granule_id}: a newer model version is current; rows "
                  f"stored superseded (--make-current to serve them)"
                  for g in self.granules if g.status == "ok" and not g.current]
        lines += [f"  FAILED {_with_file(g)}" for g in self.granules if g.status == "failed"]
        return "\n".join(lines)


def _with_file(report: GranuleReport) -> str:
    """The error, prefixed with the granule's files unless it already names one of them."""
    error = report.error or ""
    if any(name in error for name in report.files.split(", ")):
        return error
    return f"{report.files}: {error}"


def new_run_id(pipeline: str) -> str:
    return f"{pipeline}-{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"


def run_pipeline(
    pipeline: str,
    paths: Sequence[Path],
    *,
    mode: Mode,
    settings: Settings,
    keep_going: bool = False,
    workers: int | None = None,
    executor: str = "local",
    scheduler: str | None = None,
    model_version: str | None = None,
    params: dict[str, Any] | None = None,
    progress: bool | None = None,
    keep_rows: bool = False,
    make_current: bool = False,
    granule_id: str | None = None,
) -> RunSummary:
    """Run ``pipeline`` over ``paths``; stop (RunFailed) at a bad granule unless keep_going.

    ``params`` are validated first (:func:`epnml.ingest.spec.validate_params`: ValueError,
    nothing registered or read); model parameters other than the defaults make a derived
    model version (e.g. ``1.0.0+threshold-0.7``), registered with its base card and those
    parameters. ``make_current``: the rows become current even when a newer model version is.
    ``granule_id``: the id of the one granule of ``paths`` (a re-run of a stored granule
    keeps the obs_id ingest gave it; without a database it cannot be looked up).
    """
    from epnml.ingest.spec import validate_params

    params, derived = validate_params(pipeline, params, model_version)
    stage = get_stage(pipeline, model_version, params)
    if mode == "ingest" and getattr(stage, "predict_only", False):
        raise ValueError(f"{pipeline} is predict-only: its results are not a product table "
                         f"(use `epnml predict {pipeline}`)")
    product = get_product(stage.product)
    model = stage.model_info()
    # absolute before grouping: the recorded files must stay valid from any directory
    inputs = [Path(os.path.abspath(p)) for p in paths]
    failures: list[tuple[str, str]] = []
    missing = [p for p in inputs if not p.exists()]
    if missing and not keep_going:
        raise GranuleError(printable(missing[0]), "no such file")
    failures += [(printable(p), f"{printable(p)}: no such file") for p in missing]
    present = [p for p in inputs if p.exists()]
    granules, grouping_failures = group_granules(stage, present, keep_going) if present \
        else ([], [])
    failures += grouping_failures
    if granule_id is not None:
        if len(granules) != 1:
            raise ValueError(f"granule_id {granule_id!r} names one granule; the files make "
                             f"{len(granules)}")
        granules = [replace(granules[0], granule_id=granule_id)]
    run_id = new_run_id(pipeline)
    ctx = RunContext(
        run_id=run_id,
        files_base_url=f"{files_url(settings)}",
        started=datetime.now(UTC).replace(tzinfo=None),
        make_quicklooks=mode == "ingest",
        params=dict(params or {}),
        reference_data=settings.shared_data,
    )
    # what else the run reads besides its files and model (catalogues): names and sha256
    run_inputs: dict[str, Any] = (stage.run_inputs(ctx) if hasattr(stage, "run_inputs")
                                  else {})
    summary = RunSummary(run_id, pipeline, mode, model.version, inputs=run_inputs)
    conn = None
    sources: dict[str, Any] = {}
    renamed: dict[str, str] = {}
    if mode == "ingest":
        from epnml.db import connect, process_identity, sweep_runs
        from epnml.ingest.writer import register_model

        conn = connect(settings)
        summary.swept = [r[0] for r in sweep_runs(conn)]
        card = stage.model_card()
        if derived:
            card = {**card, "base_version": model.version.split("+")[0], "params": derived}
        register_model(conn, model, card)
        hostname, boot_id, pid, proc_start = process_identity()
        conn.execute(
            "INSERT INTO epnml.runs (run_id, pipeline, model_name, model_version, started_at,"
            " params, inputs, status, hostname, boot_id, pid, proc_start, heartbeat_at,"
            " software) VALUES (%s, %s, %s, %s, %s, %s::jsonb, %s::jsonb, 'running', %s, %s,"
            " %s, %s, %s, %s::jsonb)",
            (run_id, pipeline, model.name, model.version, ctx.started, json.dumps(ctx.params),
             json.dumps(run_inputs), hostname, boot_id, pid, proc_start, ctx.started,
             json.dumps(software_versions())),
        )
    status = "stopped"
    t0 = time.perf_counter()
    pool = None
    try:
        used_ids: set[str] = set()
        for files, error in failures:  # only with keep_going: raised above otherwise
            _record_failure(summary, conn, run_id, files, error, used_ids)
        if conn is not None:
            granules, id_failures = _identify(conn, pipeline, granules, sources, renamed)
            for files, error in id_failures:
                _record_failure(summary, conn, run_id, files, error, used_ids)
                if not keep_going:
                    raise RunFailed(error)
        used_ids.update(g.granule_id for g in granules)
        records: list[pd.DataFrame] = []
        n_workers = max(1, min(workers or settings.workers, len(granules)))
        show = sys.stderr.isatty() if progress is None else progress
        bar = tqdm(total=len(granules), unit="granule", disable=not show, desc=pipeline)
        if granules:
            pool = make_executor(executor, n_workers, scheduler)
            # Dask ingest: each worker writes the granules it computed (WorkerWrite)
            write = WorkerWrite(settings, pipeline, stage.product, model, run_id,
                                make_current) if mode == "ingest" and executor == "dask" \
                else None
            for result in pool.map_granules(pipeline, model_version, granules, ctx,
                                            write=write, sources=sources):
                if result.report is not None:  # written (and recorded) by the worker
                    report = result.report
                    if report.status == "ok" and result.output is not None:
                        records.append(result.output.records)
                else:
                    report = _handle(result, mode, conn, product, pipeline, model, settings,
                                     records, run_id=run_id, source=sources.get(
                                         result.granule.granule_id),
                                     make_current=make_current)
                report.renamed_from = renamed.get(report.granule_id)
                if keep_rows and result.output is not None and report.status == "ok":
                    summary.rows.extend(result.output.rows)
                summary.granules.append(report)
                bar.update()
                if report.status == "failed":
                    tqdm.write(f"error: {_with_file(report)}", file=sys.stderr)
                    if not keep_going:
                        raise RunFailed(_with_file(report), report.kind)
        bar.close()
        summary.records = pd.concat(records, ignore_index=True) if records else pd.DataFrame()
        status = "finished"
    finally:
        if pool is not None:
            pool.close()
        summary.seconds = time.perf_counter() - t0
        if conn is not None:
            # the counts were kept up to date granule by granule (same transactions)
            conn.execute(
                "UPDATE epnml.runs SET finished_at = %s, status = %s, heartbeat_at = %s"
                " WHERE run_id = %s",
                (datetime.now(UTC).replace(tzinfo=None), status,
                 datetime.now(UTC).replace(tzinfo=None), run_id),
            )
            conn.close()
    return summary


def group_granules(stage: Stage, inputs: list[Path], keep_going: bool
                   ) -> tuple[list[Granule], list[tuple[str, str]]]:
    """The stage's granules of ``inputs``, and (files, error) of the inputs it refused.

    Without ``keep_going`` the first grouping error is raised (a GranuleError naming a
    file). With it, a file the stage refuses is left out and the others are grouped
    again (a folder is then given as a mirror of symbolic links without that file, so
    the stage sees the same folder layout); an error that names no input file fails
    the input(s) it came from.
    """
    if not keep_going:
        try:
            return list(stage.granules(inputs)), []
        except GranuleError:
            raise
        except Exception as exc:  # any grouping bug is a clear error naming the inputs
            raise GranuleError(", ".join(printable(p) for p in inputs),
                               f"cannot group the files: {_describe(exc)}") from exc
    with tempfile.TemporaryDirectory(prefix="epnml-group-") as scratch:
        granules, failures, stuck = _group_excluding(stage, inputs, Path(scratch))
        if stuck is None:
            return granules, failures
        if len(inputs) == 1:
            name = printable(inputs[0])
            return [], [*failures, (name, stuck if name in stuck else f"{name}: {stuck}")]
        # an error naming no file: group each input alone, so only its input fails
        granules, failures = [], []
        for one in inputs:
            g, f = group_granules(stage, [one], keep_going=True)
            granules += g
            failures += f
        return granules, failures


def _group_excluding(stage: Stage, inputs: list[Path], scratch: Path
                     ) -> tuple[list[Granule], list[tuple[str, str]], str | None]:
    excluded: dict[Path, str] = {}
    n_files = sum(1 for p in inputs for _ in (p.rglob("*") if p.is_dir() else [p])) + 1
    for attempt in range(n_files):
        effective, mirrors = _without(inputs, set(excluded), scratch / str(attempt))
        if not effective:
            return [], _excluded_failures(excluded), None
        try:
            groups = list(stage.granules(effective))
        except Exception as exc:  # noqa: BLE001 - every grouping failure is a failed file
            culprit = _culprit(exc, inputs, mirrors)
            message = str(exc) if isinstance(exc, GranuleError | ValueError | OSError) \
                else _describe(exc)
            if culprit is None or culprit in excluded:
                return [], _excluded_failures(excluded), printable(message)
            excluded[culprit] = printable(_unmirror_text(message, mirrors))
            continue
        granules = [replace(g, paths=tuple(_unmirror(p, mirrors) for p in g.paths))
                    for g in groups]
        return granules, _excluded_failures(excluded), None
    return [], _excluded_failures(excluded), "too many files refused while grouping"


def _describe(exc: BaseException) -> str:
    return f"unexpected {type(exc).__name__}: {exc}"


def _excluded_failures(excluded: dict[Path, str]) -> list[tuple[str, str]]:
    return [(printable(p), error) for p, error in excluded.items()]


def _without(inputs: list[Path], excluded: set[Path], scratch: Path
             ) -> tuple[list[Path], dict[Path, Path]]:
    """``inputs`` without the excluded files: folders holding one become link mirrors."""
    effective: list[Path] = []
    mirrors: dict[Path, Path] = {}
    for k, path in enumerate(inputs):
        if path in excluded:
            continue
        if path.is_dir() and any(path in x.parents for x in excluded):
            root = scratch / str(k) / path.name
            _mirror(path, excluded, root)
            mirrors[root] = path
            effective.append(root)
        else:
            effective.append(path)
    return effective, mirrors


def _mirror(directory: Path, excluded: set[Path], root: Path) -> None:
    root.mkdir(parents=True)
    for entry in sorted(directory.iterdir()):
        if entry in excluded:
            continue
        if entry.is_dir() and not entry.is_symlink() and any(entry in x.parents
                                                             for x in excluded):
            _mirror(entry, excluded, root / entry.name)
        else:
            (root / entry.name).symlink_to(entry)


def _unmirror(path: Path, mirrors: dict[Path, Path]) -> Path:
    for root, original in mirrors.items():
        if path == root or root in path.parents:
            return original / path.relative_to(root)
    return path


def _unmirror_text(text: str, mirrors: dict[Path, Path]) -> str:
    for root, original in mirrors.items():
        text = text.replace(str(root), str(original))
    return text


def _culprit(exc: BaseException, inputs: list[Path], mirrors: dict[Path, Path]) -> Path | None:
    """The input file a grouping error names (a file given or inside a given folder)."""
    named = getattr(exc, "path", None) or getattr(exc, "filename", None)
    if not isinstance(named, str) or not named:
        return None
    for candidate in (named, *named.split(", ")):
        path = _unmirror(Path(os.path.abspath(candidate)), mirrors)
        if path.is_dir():
            continue
        if path in inputs or any(p in path.parents for p in inputs if p.is_dir()):
            return path
    return None


def _identify(conn: Any, pipeline: str, granules: list[Granule], sources: dict[str, Any],
              renamed: dict[str, str]) -> tuple[list[Granule], list[tuple[str, str]]]:
    """Give each granule its obs_id by content and provenance (writer.resolve_obs_id)."""
    from epnml.ingest.writer import describe_source, resolve_obs_id

    out: list[Granule] = []
    failures: list[tuple[str, str]] = []
    claimed: dict[str, str] = {}
    labels: dict[str, str] = {}
    with conn.cursor() as cur:
        for granule in granules:
            try:
                source = describe_source(granule)
            except OSError as exc:
                failures.append((granule.label, f"{granule.label}: cannot read: "
                                 f"{printable(exc.strerror or str(exc))}"))
                continue
            try:
                obs_id = resolve_obs_id(cur, pipeline, granule.granule_id, source, claimed)
            except ValueError as exc:
                failures.append((granule.label, printable(str(exc))))
                continue
            if obs_id in claimed:  # a copy of a file of this run: its rows are written once
                failures.append((granule.label, f"{granule.label}: same content as "
                                 f"{labels[obs_id]}, already in this run"))
                continue
            claimed[obs_id] = source.sha256
            labels[obs_id] = granule.label
            if obs_id != granule.granule_id:
                known = cur.execute(
                    "SELECT 1 FROM epnml.granule_sources WHERE pipeline = %s AND obs_id = %s"
                    " AND sha256 = %s", (pipeline, obs_id, source.sha256)).fetchone()
                if known is None:  # said once: when the id is first given to this source
                    renamed[obs_id] = granule.granule_id
                granule = replace(granule, granule_id=obs_id)
            sources[obs_id] = source
            out.append(granule)
    return out, failures


def software_versions() -> dict[str, str]:
    """The software agent of a run (epnml.runs.software, the PROV agent of its rows)."""
    import platform

    import torch

    from epnml import __version__

    return {"epnml": __version__, "python": platform.python_version(),
            "torch": str(torch.__version__)}


@dataclass(frozen=True)
class WorkerWrite:
    """Write a granule in the (Dask) worker that computed it: the worker's own connection,
    one transaction per granule holding its rows and its ``granule_runs`` record.

    Sent with every task, so it holds the settings (the DSN) but never shows them: no repr.
    """

    settings: Settings = field(repr=False)
    pipeline: str
    product: str
    model: Any
    run_id: str
    make_current: bool = False

    def __call__(self, result: GranuleResult, source: Any) -> GranuleReport:
        conn = _worker_connection(self.settings)
        return _handle(result, "ingest", conn, get_product(self.product), self.pipeline,
                       self.model, self.settings, [], run_id=self.run_id, source=source,
                       make_current=self.make_current)


_WORKER_CONNS = threading.local()


def _worker_connection(settings: Settings) -> Any:
    """One autocommit connection per worker thread and database, reused across granules."""
    from epnml.db import connect

    conns: dict[str, Any] = _WORKER_CONNS.__dict__.setdefault("conns", {})
    key = hashlib.sha256((settings.dsn or str(settings.dsn_file)).encode()).hexdigest()
    conn = conns.get(key)
    if conn is None or conn.closed or conn.broken:
        conn = conns[key] = connect(settings)
    return conn


def _record(cur: Any, run_id: str, report: GranuleReport) -> None:
    """The granule's granule_runs line and the run's counts (in the caller's transaction).

    The line names the process writing it (host, pid): the run's own process, or the Dask
    worker that computed and wrote the granule."""
    cur.execute(
        "INSERT INTO epnml.granule_runs (run_id, granule_id, files, status, n_rows,"
        " n_superseded, error, seconds, hostname, pid)"
        " VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
        (run_id, printable(report.granule_id), printable(report.files), report.status,
         report.n_rows, report.n_superseded,
         None if report.error is None else printable(report.error), report.seconds,
         socket.gethostname(), os.getpid()),
    )
    cur.execute(
        "UPDATE epnml.runs SET n_granules = n_granules + 1, n_failed = n_failed + %s,"
        " n_rows = n_rows + %s, heartbeat_at = %s WHERE run_id = %s",
        (int(report.status == "failed"), report.n_rows,
         datetime.now(UTC).replace(tzinfo=None), run_id),
    )


def _record_failure(summary: RunSummary, conn: Any, run_id: str, files: str, error: str,
                    used_ids: set[str]) -> None:
    """A file that never became a granule (missing, refused by the grouping): failed."""
    name = Path(files.split(", ")[0]).name or "input"
    gid, k = name, 1
    while gid in used_ids:
        k += 1
        gid = f"{name}~{k}"
    used_ids.add(gid)
    report = GranuleReport(gid, files, "failed", error=error)
    summary.granules.append(report)
    tqdm.write(f"error: {_with_file(report)}", file=sys.stderr)
    if conn is not None:
        with conn.transaction(), conn.cursor() as cur:
            _record(cur, run_id, report)


def _handle(result: GranuleResult, mode: Mode, conn: Any, product: Any, pipeline: str,
            model: Any, settings: Settings, records: list[pd.DataFrame], *, run_id: str,
            source: Any = None, make_current: bool = False) -> GranuleReport:
    granule = result.granule
    report = GranuleReport(printable(granule.granule_id), granule.label, "ok",
                           seconds=result.seconds)
    if result.error is not None or result.output is None:
        report.status = "failed"
        report.kind = result.kind
        report.error = printable(result.error or "no output (the stage returned nothing)")
        return _record_failed(report, conn, run_id)
    output = result.output
    if mode == "ingest":
        from epnml.ingest.writer import WriteResult, write_granule

        for row in output.rows:
            row.setdefault("datalink_url", datalink_url(settings, row["granule_uid"]))

        def bookkeeping(cur: Any, written: WriteResult) -> None:
            report.n_rows, report.n_superseded = written.n_rows, written.n_superseded
            report.current = written.current
            _record(cur, run_id, report)

        try:
            write_granule(conn, product, pipeline, output, model, settings.data_dir,
                          source=source, run_id=run_id, make_current=make_current,
                          bookkeeping=bookkeeping)
        except Exception as exc:  # the transaction rolled back: no rows of this granule
            report.status, report.n_rows, report.n_superseded = "failed", 0, 0
            report.error = printable(f"database write failed: {exc}")
            return _record_failed(report, conn, run_id)
    else:
        report.n_rows = len(output.records)
    records.append(output.records)
    return report


def _record_failed(report: GranuleReport, conn: Any, run_id: str) -> GranuleReport:
    if conn is not None:
        with conn.transaction(), conn.cursor() as cur:
            _record(cur, run_id, report)
    return report
