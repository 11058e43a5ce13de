"""The ``epnml`` command line (the HTTP service calls the same functions)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Literal

from epnml.config import load_settings


def _pipeline_args(parser: argparse.ArgumentParser, extra: tuple[str, ...] = ()) -> None:
    from epnml.ingest.registry import PIPELINES

    parser.add_argument("pipeline", choices=sorted([*PIPELINES, *extra]), help="science case")
    parser.add_argument("files", nargs="+", type=Path, help="input files or folders")
    parser.add_argument("--model-version", help="model version (default: newest committed)")
    parser.add_argument("--threshold", type=float, help="detection threshold in (0, 1)")
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                        help="a pipeline parameter (repeatable), e.g. min_region_s=30")
    parser.add_argument("--keep-going", action="store_true",
                        help="report a failed granule and continue with the others")
    parser.add_argument("--workers", type=int, help="worker processes (default from config)")
    parser.add_argument("--executor", choices=["local", "dask"], default="local",
                        help="local worker processes or a Dask distributed cluster")
    parser.add_argument("--scheduler", help="Dask scheduler address, e.g. tcp://host:8786")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _params(args: argparse.Namespace) -> dict[str, Any]:
    """--param NAME=VALUE pairs plus --threshold, as given: run_pipeline validates and
    types them against the pipeline's spec (epnml.ingest.spec) before anything runs."""
    params: dict[str, Any] = {}
    for item in args.param:
        name, sep, value = item.partition("=")
        if not sep or not name.strip().isidentifier():
            raise ValueError(f"--param wants NAME=VALUE, got {item!r}")
        params[name.strip()] = value.strip()
    if getattr(args, "threshold", None) is not None:
        params["threshold"] = args.threshold
    return params


def _run(args: argparse.Namespace, mode: Literal["predict", "ingest"]) -> int:
    from epnml.ingest.runner import RunFailed, run_pipeline

    settings = load_settings()
    try:
        summary = run_pipeline(
            args.pipeline, args.files, mode=mode,
            settings=settings, keep_going=args.keep_going, workers=args.workers,
            executor=args.executor, scheduler=args.scheduler,
            model_version=args.model_version, params=_params(args),
            progress=False if args.no_progress else None,
            make_current=getattr(args, "make_current", False),
        )
    except RunFailed as exc:
        print(f"epnml: stopped: {exc} (use --keep-going to continue past bad granules)",
              file=sys.stderr)
        return 2 if exc.kind == "limit" else 1
    if mode == "predict":
        out: Path = args.output
        summary.records.to_csv(out, index=False)
        print(f"wrote {len(summary.records)} row(s) to {out}", file=sys.stderr)
    print(summary.text(), file=sys.stderr)
    return _exit_code(summary)


def _exit_code(summary: Any) -> int:
    """0 all granules ok, 2 an input declared more work than the limits allow, else 1."""
    kinds = {g.kind for g in summary.granules if g.status == "failed"}
    if "limit" in kinds:
        return 2
    return 1 if kinds else 0


def cmd_predict(args: argparse.Namespace) -> int:
    return _run(args, "predict")


def cmd_ingest(args: argparse.Namespace) -> int:
    if args.pipeline == "landforms":
        return _ingest_landforms(args)
    if args.models:
        raise ValueError("--models goes with `epnml ingest landforms` only")
    return _run(args, "ingest")


def _ingest_landforms(args: argparse.Namespace) -> int:
    """Each file to the landform model(s) of ``epnml.ingest.routing`` (or ``--models``)."""
    from epnml.ingest.routing import route_landforms
    from epnml.ingest.stage import GranuleError

    models = [m.strip() for m in args.models.split(",")] if args.models else None
    errors: list[GranuleError] = []
    routes = route_landforms(args.files, models, errors if args.keep_going else None)
    for exc in errors:
        print(f"epnml: FAILED {exc} (not routed to any landform model)", file=sys.stderr)
    if args.model_version and len(routes) > 1:
        raise ValueError(f"--model-version names one model's version, but the files go to "
                         f"{', '.join(routes)}: give --models too")
    from epnml.ingest.limits import LimitExceeded
    from epnml.ingest.spec import validate_params

    for model in routes:  # every model's parameters before the first model runs
        validate_params(model, _params(args), args.model_version)
    status = (2 if any(isinstance(e, LimitExceeded) for e in errors) else 1) if errors else 0
    for model, files in routes.items():
        print(f"landforms: {model} <- {len(files)} file(s)", file=sys.stderr)
        one = argparse.Namespace(**{**vars(args), "pipeline": model, "files": files})
        status = max(status, _run(one, "ingest"))
        if status and not args.keep_going:
            break
    return status


def cmd_rerun(args: argparse.Namespace) -> int:
    """Re-run a served row's model on its recorded source files (epnml.rerun.rerun, what
    /preview and /commit run): rows as CSV/JSON, or --commit to write them."""
    import json

    from epnml.api.votable import json_rows
    from epnml.db import connect
    from epnml.rerun import InputError, NotFound, RerunPreview, RunError, rerun

    settings = load_settings()
    params = _params(args)
    with connect(settings) as conn:
        try:
            done = rerun(conn, settings, args.id, model_version=args.model_version,
                         params=params, commit=args.commit)
        except RunError as exc:  # the granule failed: like a failed `epnml predict`
            print(f"epnml: stopped: {exc}", file=sys.stderr)
            return 1
        except (InputError, NotFound) as exc:  # bad ID, version or parameter; a limit
            print(f"epnml: error: {exc}", file=sys.stderr)
            return 2
        except RuntimeError as exc:  # source gone, busy, internal
            print(f"epnml: error: {exc}", file=sys.stderr)
            return 1
    ref = done.ref
    if isinstance(done, RerunPreview):
        rows = json_rows(done.rows)
        if args.format == "json":
            text = json.dumps({"ID": args.id, "pipeline": ref.pipeline,
                               "model_version": done.model_version, "n_rows": len(rows),
                               "seconds": round(done.seconds, 4), "rows": rows}, indent=1)
        else:
            import pandas as pd

            text = pd.DataFrame(rows).to_csv(index=False)
        print(f"{ref.pipeline} {done.model_version} on {ref.obs_id}: {len(rows)} row(s), "
              "nothing written", file=sys.stderr)
    else:
        print(done.summary.text(), file=sys.stderr)
        text = json.dumps({"ID": args.id, "pipeline": ref.pipeline, **done.report()},
                          indent=1) if args.format == "json" else ""
    if args.output is not None:
        args.output.write_text(text)
        if text:
            print(f"wrote {args.output}", file=sys.stderr)
    elif text:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return 0


def cmd_db_migrate(args: argparse.Namespace) -> int:
    from epnml.db import migrate

    applied = migrate(load_settings())
    print("applied: " + (", ".join(applied) if applied else "nothing (up to date)"),
          file=sys.stderr)
    return 0


def cmd_db_sweep(args: argparse.Namespace) -> int:
    from datetime import timedelta

    from epnml.db import connect, sweep_runs

    if not args.stale_hours > 0:
        raise ValueError(f"--stale-hours must be > 0, got {args.stale_hours}")
    with connect(load_settings()) as conn:
        closed = sweep_runs(conn, timedelta(hours=args.stale_hours))
    for run_id, n_granules, n_failed, n_rows in closed:
        print(f"aborted {run_id}: {n_granules} granule(s) committed ({n_failed} failed), "
              f"{n_rows} row(s)", file=sys.stderr)
    if not closed:
        print("no run of a dead process is open", file=sys.stderr)
    return 0


def cmd_db_partitions(args: argparse.Namespace) -> int:
    from epnml.db import connect, default_partition_warnings, partition_rows

    with connect(load_settings()) as conn:
        rows = partition_rows(conn)
    print("table\tpartition\tbound\trows")
    for table, name, bound, n, _ in rows:
        print(f"{table}\t{name}\t{bound}\t{n}")
    for warning in default_partition_warnings(rows):
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def cmd_db_retire(args: argparse.Namespace) -> int:
    from epnml.db import connect
    from epnml.ingest.registry import make_stage
    from epnml.ingest.writer import granules_of_files, retire_granules
    from epnml.schemas import get_product

    product = get_product(make_stage(args.pipeline).product)
    with connect(load_settings()) as conn:
        if not args.obs_id and not args.files:
            raise ValueError("nothing to retire: give obs_ids or --files of ingested granules")
        obs_ids = list(args.obs_id)
        if args.files:
            obs_ids += [o for o in granules_of_files(conn, args.pipeline, args.files)
                        if o not in obs_ids]
        if not obs_ids:
            print(f"no {args.pipeline} granule was ingested from these files", file=sys.stderr)
            return 0
        retired = retire_granules(conn, product, args.pipeline, obs_ids, args.reason)
    for obs_id, n in retired.items():
        print(f"{args.pipeline} {obs_id}: " + (f"{n} row(s) retired (kept, superseded)" if n
              else "no current rows"), file=sys.stderr)
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from epnml.ingest.registry import MODEL_VERSIONS, make_stage

    conn = None
    if args.register:
        from epnml.db import connect

        conn = connect(load_settings())
    try:
        for pipeline, versions in MODEL_VERSIONS.items():
            for version in versions():
                print(f"{pipeline} {version}")
                if conn is not None:
                    from epnml.ingest.writer import register_model

                    stage = make_stage(pipeline, version)
                    register_model(conn, stage.model_info(), stage.model_card())
    finally:
        if conn is not None:
            conn.close()
    return 0


def cmd_datasets_build(args: argparse.Namespace) -> int:
    from epnml.datasets.build import build_all

    settings = load_settings()
    out = args.out or settings.models_dir / "datasets"
    for path in build_all(settings.shared_data, out, args.model or ()):
        print(f"wrote {path}", file=sys.stderr)
    return 0


def cmd_datasets_register(args: argparse.Namespace) -> int:
    from epnml.datasets.register import manifest_files, register_all
    from epnml.db import connect

    settings = load_settings()
    paths = args.manifests or manifest_files(settings.models_dir / "datasets")
    with connect(settings) as conn:
        done = register_all(conn, paths)
    for r in done:
        print(f"{r.dataset_id}: {'registered' if r.added else 'already registered'} "
              f"({r.n_samples} samples)", file=sys.stderr)
    return 0


def _worker_counts(text: str) -> tuple[int, ...]:
    try:
        counts = tuple(int(n) for n in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--workers {text!r}: integers such as 1,2") from None
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"--workers {text!r}: every count must be >= 1")
    return counts


def cmd_bench(args: argparse.Namespace) -> int:
    if args.what in ("partitions", "archive", "scale"):  # issue #17; not in "all" (long)
        from epnml.bench_scale import run_scale_bench

        return run_scale_bench(args.what, rows=args.rows, output=args.output)
    from epnml.bench import run_bench

    return run_bench(args.what, rows=args.rows, output=args.output, workers=args.workers)


def _start_dachs(server_url: str) -> None:
    """Start DaCHS (``dachs serve start``, as service/provision.sh does) unless it answers."""
    import shutil
    import subprocess
    import time
    import urllib.request

    probe = f"{server_url.rstrip('/')}/tap/availability"

    def answers() -> bool:
        try:
            with urllib.request.urlopen(probe, timeout=3) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    if answers():
        print(f"epnml: DaCHS already answers at {server_url}", file=sys.stderr)
        return
    if shutil.which("dachs") is None:
        raise RuntimeError("DaCHS is not installed (bash service/provision.sh install), "
                           "or use --no-dachs")
    print(f"epnml: starting DaCHS for {server_url}", file=sys.stderr)
    subprocess.run(["dachs", "serve", "start"], check=False, capture_output=True)
    for _ in range(60):
        if answers():
            return
        time.sleep(1)
    raise RuntimeError(f"DaCHS did not answer at {probe} within 60 s (see its logs)")


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from epnml.api import create_app
    from epnml.safety import log_config, redirect_output

    settings = load_settings()
    log_file = args.log_file or settings.api_log
    if log_file:  # created mode 600: it may hold error details
        redirect_output(log_file)
    if not args.no_dachs:
        _start_dachs(settings.server_url)
    if not settings.api_url.rstrip("/").endswith(f":{args.port}"):
        print(f"epnml: note: api_url is {settings.api_url} (EPNML_API_URL); DataLink links "
              f"point there, this process listens on port {args.port}", file=sys.stderr)
    # the service's own access log (epnml.api.access) has no query strings; uvicorn's is off
    uvicorn.run(create_app(settings), host=args.host, port=args.port, log_level=args.log_level,
                access_log=False, log_config=log_config(args.log_level))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="epnml",
        description="EPN-TAP catalogues written by machine-learning ingest stages.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("predict", help="run a model on files and write a CSV (no database)")
    _pipeline_args(p)
    p.add_argument("-o", "--output", type=Path, required=True, help="output CSV")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("ingest", help="run a model on files and write rows to the service")
    _pipeline_args(p, extra=("landforms",))
    p.add_argument("--models", metavar="M1,M2",
                   help="landforms only: run these of pits,craters,mounds,ice on every file "
                        "instead of routing each file by its content")
    p.add_argument("--make-current", action="store_true",
                   help="serve these rows even when a newer model version's rows are current "
                        "(without it an older version's rows are stored superseded)")
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("rerun", help="re-run a served row's model on its granule: preview "
                                     "the rows, or --commit them as a new version")
    p.add_argument("id", metavar="ID", help="the row's granule_uid (as in datalink_url)")
    p.add_argument("--model-version",
                   help="a committed version (default: the row's own while committed, "
                        "else the newest)")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                   help="a pipeline parameter (repeatable), e.g. threshold=0.7; other "
                        "values than the defaults derive a version")
    p.add_argument("--commit", action="store_true",
                   help="write the rows (they supersede the current ones, which stay "
                        "stored); needs the ingest DSN, as `epnml ingest` does")
    p.add_argument("--format", choices=["csv", "json"], default="csv",
                   help="preview rows as CSV (default) or JSON; with --commit, json "
                        "prints the run summary")
    p.add_argument("-o", "--output", type=Path, help="write here instead of stdout")
    p.set_defaults(func=cmd_rerun)

    p = sub.add_parser("db", help="database administration")
    dbsub = p.add_subparsers(dest="db_command", required=True)
    m = dbsub.add_parser("migrate", help="apply the sql/ migrations")
    m.set_defaults(func=cmd_db_migrate)
    m = dbsub.add_parser("sweep", help="close the runs of ingest processes that are gone as "
                                       "aborted, with their committed counts")
    m.add_argument("--stale-hours", type=float, default=24.0,
                   help="runs of another host: aborted when silent this long (default 24)")
    m.set_defaults(func=cmd_db_sweep)

    m = dbsub.add_parser("partitions", help="the product tables' partitions with their row "
                                            "counts; warns when a DEFAULT partition holds rows")
    m.set_defaults(func=cmd_db_partitions)

    m = dbsub.add_parser("retire", help="supersede a granule's current rows without a new "
                                        "version (kept, never deleted; epnml.retirements "
                                        "records why)")
    from epnml.ingest.registry import PIPELINES

    m.add_argument("pipeline", choices=sorted(PIPELINES))
    m.add_argument("obs_id", nargs="*", help="granules to retire (obs_id)")
    m.add_argument("--files", nargs="+", type=Path, default=[],
                   help="retire the granules ingested from these files")
    m.add_argument("--reason", required=True, help="why (stored with the retirement)")
    m.set_defaults(func=cmd_db_retire)

    p = sub.add_parser("models", help="list the committed model versions")
    p.add_argument("--register", action="store_true",
                   help="also record them in the model registry (epnml_models.versions)")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("datasets", help="training datasets of the model versions "
                                        "(docs/datasets.md)")
    dsub = p.add_subparsers(dest="datasets_command", required=True)
    m = dsub.add_parser("build", help="write ml/datasets/<model>-<version>.json from the shared "
                                      "data and the trainers' split code")
    m.add_argument("--model", action="append", metavar="NAME-VERSION",
                   help="only this model version (repeatable), e.g. pits-1.0.0")
    m.add_argument("--out", type=Path, help="folder (default <models_dir>/datasets)")
    m.set_defaults(func=cmd_datasets_build)
    m = dsub.add_parser("register", help="load the committed manifests into the store "
                                         "(idempotent; a registered dataset never changes)")
    m.add_argument("manifests", nargs="*", type=Path,
                   help="manifest files (default: all of <models_dir>/datasets)")
    m.set_defaults(func=cmd_datasets_register)

    p = sub.add_parser("serve", help="start DaCHS and the re-inference/DataLink HTTP service")
    p.add_argument("--host", default="127.0.0.1",
                   help="listen address (default 127.0.0.1: loopback only; to expose the "
                        "service put a reverse proxy with TLS in front of it)")
    p.add_argument("--port", type=int, default=8090, help="listen port (default 8090)")
    p.add_argument("--no-dachs", action="store_true",
                   help="do not start DaCHS (it runs elsewhere or is already up)")
    p.add_argument("--log-level", default="info",
                   choices=["critical", "error", "warning", "info", "debug"])
    p.add_argument("--log-file", default=None,
                   help="append the log here (created mode 600; default: api_log setting, "
                        "else stderr)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("bench", help="benchmarks (ingest, query, icme, crossings, units, "
                                     "landforms, api, dask, aurora, previews, mission, store; "
                                     "issue #17: partitions, archive, scale), JSON")
    p.add_argument("what", choices=["ingest", "query", "icme", "crossings", "units",
                                    "landforms", "api", "dask", "aurora", "previews", "mission",
                                    "store", "partitions", "archive", "scale", "all"])
    p.add_argument("--rows", type=int, default=None,
                   help="rows for ingest/query/partitions (10 M) benchmarks; orbits for "
                        "mission (96); archive runs by time (20 s x 3 per stage)")
    p.add_argument("--workers", type=_worker_counts, default=(1, 2),
                   help="mission: Dask worker counts, comma-separated (default 1,2)")
    p.add_argument("-o", "--output", type=Path, help="also write the JSON results here")
    p.set_defaults(func=cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result: int = args.func(args)
    except (ValueError, RuntimeError, OSError) as exc:
        print(f"epnml: error: {exc}", file=sys.stderr)
        return 2
    return result


if __name__ == "__main__":
    raise SystemExit(main())
