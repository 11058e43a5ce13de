"""The ``epnml`` command line (the HTTP service calls the same functions)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from epnml.config import load_settings


def _pipeline_args(parser: argparse.ArgumentParser) -> None:
    from epnml.ingest.registry import PIPELINES

    parser.add_argument("pipeline", choices=sorted(PIPELINES), help="science case")
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
    """--param NAME=VALUE pairs (numbers parsed) plus --threshold; stages validate them."""
    params: dict[str, Any] = {}
    for item in args.param:
        name, sep, value = item.partition("=")
        if not sep or not name.strip().isidentifier():
            raise ValueError(f"--param wants NAME=VALUE, got {item!r}")
        try:
            params[name.strip()] = float(value)
        except ValueError:
            params[name.strip()] = value
    if args.threshold is not None:
        params["threshold"] = args.threshold
    return params


def _run(args: argparse.Namespace, mode: str) -> int:
    from epnml.ingest.runner import RunFailed, run_pipeline

    settings = load_settings()
    try:
        summary = run_pipeline(
            args.pipeline, args.files, mode=mode,
            settings=settings, keep_going=args.keep_going, workers=args.workers,
            executor=args.executor, scheduler=args.scheduler,
            model_version=args.model_version, params=_params(args),
            progress=False if args.no_progress else None,
        )
    except RunFailed as exc:
        print(f"epnml: stopped: {exc} (use --keep-going to continue past bad granules)",
              file=sys.stderr)
        return 1
    if mode == "predict":
        out: Path = args.output
        summary.records.to_csv(out, index=False)
        print(f"wrote {len(summary.records)} row(s) to {out}", file=sys.stderr)
    print(summary.text(), file=sys.stderr)
    return 1 if summary.n_failed else 0


def cmd_predict(args: argparse.Namespace) -> int:
    return _run(args, "predict")


def cmd_ingest(args: argparse.Namespace) -> int:
    return _run(args, "ingest")


def cmd_db_migrate(args: argparse.Namespace) -> int:
    from epnml.db import migrate

    applied = migrate(load_settings())
    print("applied: " + (", ".join(applied) if applied else "nothing (up to date)"),
          file=sys.stderr)
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


def cmd_bench(args: argparse.Namespace) -> int:
    from epnml.bench import run_bench

    return run_bench(args.what, rows=args.rows, output=args.output)


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
    _pipeline_args(p)
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("db", help="database administration")
    dbsub = p.add_subparsers(dest="db_command", required=True)
    m = dbsub.add_parser("migrate", help="apply the sql/ migrations")
    m.set_defaults(func=cmd_db_migrate)

    p = sub.add_parser("models", help="list the committed model versions")
    p.add_argument("--register", action="store_true",
                   help="also record them in the model registry (epnml_models.versions)")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("bench", help="benchmarks (ingest, query, icme, crossings, units), JSON")
    p.add_argument("what", choices=["ingest", "query", "icme", "crossings", "units", "all"])
    p.add_argument("--rows", type=int, default=None, help="rows for ingest/query benchmarks")
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
