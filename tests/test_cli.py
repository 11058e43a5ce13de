"""The epnml command line: help everywhere, predict without a database, clear errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from epnml.cli import build_parser, main

EPNML = [str(Path(sys.prefix) / "bin" / "epnml")]


@pytest.mark.parametrize("args", [[], ["predict"], ["ingest"], ["db"], ["db", "migrate"],
                                  ["models"], ["bench"], ["rerun"]])
def test_help_everywhere(args: list[str]) -> None:
    proc = subprocess.run([*EPNML, *args, "--help"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "usage: epnml" in proc.stdout


def test_bench_worker_counts_are_parsed_and_checked(capsys: pytest.CaptureFixture[str]) -> None:
    assert build_parser().parse_args(["bench", "mission", "--workers", "2"]).workers == (2,)
    assert build_parser().parse_args(["bench", "mission"]).workers == (1, 2)
    for bad in ("0", "1,x"):
        with pytest.raises(SystemExit):
            build_parser().parse_args(["bench", "mission", "--workers", bad])
        assert f"--workers '{bad}'" in capsys.readouterr().err


def test_unknown_pipeline_is_rejected() -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["predict", "nope", "x.csv", "-o", "y.csv"])


def test_predict_writes_events_csv(tmp_path: Path) -> None:
    from epnml.ingest.simulate.solarwind import simulate_solar_wind, write_csv

    frame, truth = simulate_solar_wind("2022-05-01", days=21, seed=11, n_icmes=2)
    source = tmp_path / "wind_simulated_20220501.csv"
    write_csv(frame, source)
    out = tmp_path / "events.csv"
    assert main(["predict", "icme", str(source), "-o", str(out), "--workers", "1",
                 "--no-progress"]) == 0
    events = pd.read_csv(out)
    assert {"start", "end", "score"} <= set(events.columns)
    for _, event in events.iterrows():
        start = pd.Timestamp(event["start"])
        end = pd.Timestamp(event["end"])
        assert str(event["start"]).endswith("Z") and start < end
        assert 0 <= event["score"] <= 1
        assert frame.index[0] <= start.tz_localize(None) <= frame.index[-1]


def test_missing_file_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nowhere.csv"
    assert main(["predict", "icme", str(missing), "-o", str(tmp_path / "o.csv")]) == 2
    err = capsys.readouterr().err
    assert "nowhere.csv" in err and "no such file" in err


def test_bad_file_stops_without_keep_going(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "wind_bad.csv"
    bad.write_text("time,bx\n2020-01-01 00:00:00,1\n")
    assert main(["predict", "icme", str(bad), "-o", str(tmp_path / "o.csv"),
                 "--workers", "1", "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "wind_bad.csv" in err and "--keep-going" in err


def test_bad_threshold_is_rejected(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from epnml.ingest.simulate.solarwind import simulate_solar_wind, write_csv

    frame, _ = simulate_solar_wind("2022-05-01", days=2, seed=1, n_icmes=0)
    source = tmp_path / "wind_simulated.csv"
    write_csv(frame, source)
    assert main(["predict", "icme", str(source), "-o", str(tmp_path / "o.csv"),
                 "--threshold", "1.5", "--workers", "1", "--no-progress"]) == 2
    # validated before any file is read: a usage error (exit 2), one line
    assert capsys.readouterr().err == "epnml: error: icme: threshold must be in (0, 1), got 1.5\n"
    assert not (tmp_path / "o.csv").exists()
