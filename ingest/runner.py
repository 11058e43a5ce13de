"""Run a pipeline over files: ``predict`` (no database) or ``ingest`` (PostgreSQL).

The CLI and the HTTP service both call :func:`run_pipeline`.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from epnml.config import Settings, datalink_url, files_url
from epnml.ingest.executor import GranuleResult, get_stage, make_executor
from epnml.ingest.stage import GranuleError, RunContext
from epnml.schemas.products import get_product
from tqdm import tqdm

Mode = Literal["predict", "ingest"]


class RunFailed(RuntimeError):
    """A granule failed and the run was not asked to keep going."""


@dataclass
class GranuleReport:
    granule_id: str
    files: str
    status: str
    n_rows: int = 0
    n_superseded: int = 0
    error: str | None = None
    seconds: float = 0.0


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
) -> RunSummary:
    """Run ``pipeline`` over ``paths``; stop (RunFailed) at a bad granule unless keep_going.

    Parameters other than the defaults make a derived model version
    (e.g. ``1.0.0+threshold-0.7``), registered with its base card and the parameters.
    """
    stage = get_stage(pipeline, model_version, params)
    if mode == "ingest" and getattr(stage, "predict_only", False):
        raise ValueError(f"{pipeline} is predict-only: its results are not a product table "
                         f"(use `epnml predict {pipeline}`)")
    product = get_product(stage.product)
    model = stage.model_info()
    missing = [p for p in paths if not Path(p).exists()]
    if missing:
        raise GranuleError(missing[0], "no such file")
    granules = stage.granules([Path(p) for p in paths])
    run_id = new_run_id(pipeline)
    ctx = RunContext(
        run_id=run_id,
        files_base_url=f"{files_url(settings)}",
        started=datetime.now(UTC).replace(tzinfo=None),
        make_quicklooks=mode == "ingest",
        params=dict(params or {}),
    )
    summary = RunSummary(run_id, pipeline, mode, model.version)
    conn = None
    if mode == "ingest":
        from epnml.db import connect
        from epnml.ingest.writer import register_model

        conn = connect(settings)
        card = stage.model_card()
        if params:
            card = {**card, "base_version": model.version.split("+")[0], "params": params}
        register_model(conn, model, card)
        conn.execute(
            "INSERT INTO epnml.runs (run_id, pipeline, model_name, model_version, started_at,"
            " params) VALUES (%s, %s, %s, %s, %s, %s::jsonb)",
            (run_id, pipeline, model.name, model.version, ctx.started, json.dumps(ctx.params)),
        )
    n_workers = workers or settings.workers
    n_workers = max(1, min(n_workers, len(granules)))
    pool = make_executor(executor, n_workers, scheduler)
    records: list[pd.DataFrame] = []
    t0 = time.perf_counter()
    show = sys.stderr.isatty() if progress is None else progress
    try:
        bar = tqdm(total=len(granules), unit="granule", disable=not show, desc=pipeline)
        for result in pool.map_granules(pipeline, model_version, granules, ctx):
            report = _handle(result, mode, conn, product, pipeline, model, settings, records)
            if keep_rows and result.output is not None:
                summary.rows.extend(result.output.rows)
            summary.granules.append(report)
            if conn is not None:
                conn.execute(
                    "INSERT INTO epnml.granule_runs (run_id, granule_id, files, status, n_rows,"
                    " n_superseded, error, seconds) VALUES (%s,%s,%s,%s,%s,%s,%s,%s)",
                    (run_id, report.granule_id, report.files, report.status, report.n_rows,
                     report.n_superseded, report.error, report.seconds),
                )
            bar.update()
            if report.status == "failed":
                tqdm.write(f"error: {_with_file(report)}", file=sys.stderr)
                if not keep_going:
                    raise RunFailed(_with_file(report))
        bar.close()
    finally:
        pool.close()
        summary.seconds = time.perf_counter() - t0
        if conn is not None:
            conn.execute(
                "UPDATE epnml.runs SET finished_at = %s, n_granules = %s, n_failed = %s,"
                " n_rows = %s WHERE run_id = %s",
                (datetime.now(UTC).replace(tzinfo=None), len(summary.granules),
                 summary.n_failed, summary.n_rows, run_id),
            )
            conn.close()
    summary.records = pd.concat(records, ignore_index=True) if records else pd.DataFrame()
    return summary


def _handle(result: GranuleResult, mode: Mode, conn: Any, product: Any, pipeline: str,
            model: Any, settings: Settings, records: list[pd.DataFrame]) -> GranuleReport:
    granule = result.granule
    report = GranuleReport(granule.granule_id, granule.label, "ok", seconds=result.seconds)
    if result.error is not None or result.output is None:
        report.status, report.error = "failed", result.error
        return report
    output = result.output
    if mode == "ingest":
        from epnml.ingest.writer import write_granule

        for row in output.rows:
            row.setdefault("datalink_url", datalink_url(settings, row["granule_uid"]))
        try:
            written = write_granule(conn, product, pipeline, output, model, settings.data_dir)
        except Exception as exc:  # the transaction rolled back: no rows of this granule
            report.status, report.error = "failed", f"database write failed: {exc}"
            return report
        report.n_rows, report.n_superseded = written.n_rows, written.n_superseded
    else:
        report.n_rows = len(output.records)
    records.append(output.records)
    return report
