"""The adversarial corpus of issue #11 through every channel: reader/stage, CLI, HTTP upload.

``tests/fixtures/make_adversarial_corpus.py`` writes >= 100 bad inputs in the real formats
(``tests/adversarial/README.md`` lists the families). Each case runs, per channel, in a
child forked from a worker process that has already loaded its pipeline's model (one
worker per pipeline, one after the other), with the address space capped by
``RLIMIT_AS`` at :data:`CAP_MB` and a wall-clock alarm of :data:`CASE_TIMEOUT_S`:

* ``inprocess``: ``stage.granules`` + ``stage.process`` (``route_landforms`` for
  ``landforms``): refusals must be GranuleError (LimitExceeded for limits) with a one-line
  message naming the user's file; cleaned inputs must give finite, sane values and count
  what they dropped in ``StageOutput.invalid_values``;
* ``cli``: ``epnml.cli.main(["predict", ...])`` (``ingest landforms``) with stderr
  captured; an exception escaping ``main`` is what the real CLI prints as a traceback;
  a few cases also run as real ``epnml`` subprocesses (``test_cli_subprocess``);
* ``http``: ``POST /preview/{pipeline}`` on ``create_app`` (FastAPI TestClient, no
  database needed: the request log fails quietly): 413 for limits, 422 otherwise, JSON
  ``{"detail": ...}``.

Everywhere: the secret marker of the files outside the case folders never shows up, a
pointer to an existing and to an absent outside file read the same, and every child's
peak memory stays under the cap (``test_peak_memory_under_the_cap``).

The memory cap: the normal path of the heaviest pipeline (``units``: model + torch +
FastAPI loaded, one good granule, in-process) peaks at 1.42 GB of address space and
0.58 GB resident (the ``baseline`` runs of this file; the others 0.7-0.9 GB / 0.24-0.32
GB); :data:`CAP_MB` = 3072 MB of address space (ru_maxrss reported per case) leaves
> 1.6 GB for one bad input and stays under the 4 GB cap of the issue's probe.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import resource
import signal
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.make_adversarial_corpus import (
    SECRET_MARKER,
    SPECS,
    Case,
    load_cases,
    make_adversarial_corpus,
)

HERE = Path(__file__).resolve().parent

#: address-space cap of every case's child process (see the module docstring).
CAP_MB = int(os.environ.get("EPNML_ADVERSARIAL_CAP_MB", "3072"))
#: a case that takes longer is killed (and fails): bounded work is part of the contract.
CASE_TIMEOUT_S = 60
#: largest magnitude any number may have (JD ~2.5e6, spectral ranges in Hz ~1e15).
SANE = 1e18
PASSWD_CONTENT = "root:x:0:0"
BAD_DSN = "host=/nonexistent-epnml-socket dbname=none user=none connect_timeout=1"
GROUPS = ("icme", "crossings", "units", "minerals", "pits", "craters", "mounds", "ice",
          "landforms")
#: cases also run as real ``epnml`` subprocesses (the CLI as users run it).
SUBPROCESS_CASES = ("sw_csv_all_inf", "mascs_ptr_structure_abs_secret",
                    "img_geotiff_geokey_past_doubles", "sw_csv_nonphysical_bx")


def _params() -> list[Any]:
    return [pytest.param(s.id, ch, id=f"{s.id}-{ch}") for s in SPECS for ch in s.channels
            if not (ch == "http" and s.pipeline == "landforms")]


# --------------------------------------------------------------------------- worker side

def _numbers(values: Any) -> tuple[int, float]:
    """(count of non-finite numbers, largest finite magnitude) over nested values."""
    import numpy as np

    bad, big = 0, 0.0
    stack = [values]
    while stack:
        v = stack.pop()
        if isinstance(v, dict):
            stack.extend(v.values())
        elif isinstance(v, list | tuple):
            stack.extend(v)
        elif isinstance(v, bool | np.bool_) or v is None:
            continue
        elif isinstance(v, int | float | np.integer | np.floating):
            f = float(v)
            if math.isnan(f) and isinstance(v, float | np.floating):
                continue  # missing data (pandas' None); the rows' None are skipped above
            if not math.isfinite(f):
                bad += 1
            else:
                big = max(big, abs(f))
    return bad, big


def _frame_numbers(frame: Any) -> tuple[int, int, float]:
    """(rows, non-finite count incl. NaN in numeric columns that have values, max |x|)."""
    import numpy as np

    numeric = frame.select_dtypes(include=[np.number]).to_numpy(dtype=float)
    if numeric.size == 0:
        return len(frame), 0, 0.0
    finite = np.isfinite(numeric)
    inf = int(np.isinf(numeric).sum())
    big = float(np.abs(numeric[finite]).max()) if finite.any() else 0.0
    return len(frame), inf, big


def _run_inprocess(case: Case, work: Path) -> dict[str, Any]:
    from datetime import UTC, datetime

    from epnml.ingest.executor import get_stage
    from epnml.ingest.limits import LimitExceeded
    from epnml.ingest.stage import GranuleError, RunContext

    out: dict[str, Any] = {"ok": False}
    try:
        if case.pipeline == "landforms":
            from epnml.ingest.routing import route_landforms

            routes = route_landforms(list(case.files))
            out.update(ok=True, text=json.dumps({k: [str(p) for p in v]
                                                 for k, v in routes.items()}),
                       n_records=sum(len(v) for v in routes.values()), n_rows=0,
                       nonfinite=0, max_abs=0.0, invalid_total=None)
            return out
        stage = get_stage(case.pipeline, None)
        ctx = RunContext(run_id="adversarial", files_base_url="http://localhost/files",
                         started=datetime.now(UTC).replace(tzinfo=None),
                         make_quicklooks=False)
        outputs = [stage.process(g, ctx) for g in stage.granules(list(case.files))]
        n_rec, bad, big, rows, text = 0, 0, 0.0, [], []
        invalid: dict[str, int] = {}
        for o in outputs:
            n, b, m = _frame_numbers(o.records)
            n_rec, bad, big = n_rec + n, bad + b, max(big, m)
            rows.extend(o.rows)
            text.append(o.records.to_csv(index=False))
            for k, v in o.invalid_values.items():
                invalid[k] = invalid.get(k, 0) + int(v)
        rb, rm = _numbers(rows)
        text.append(json.dumps(rows, default=str))
        out.update(ok=True, n_records=n_rec, n_rows=len(rows), nonfinite=bad + rb,
                   max_abs=max(big, rm), invalid=invalid,
                   invalid_total=sum(invalid.values()), text="\n".join(text)[:200000])
    except BaseException as exc:  # noqa: BLE001 - the point is to see every kind
        out.update(exc_class=f"{type(exc).__module__}.{type(exc).__qualname__}",
                   granule_error=isinstance(exc, GranuleError),
                   limit=isinstance(exc, LimitExceeded),
                   project_value_error=isinstance(exc, ValueError)
                   and type(exc).__module__.startswith("epnml"),
                   message=str(exc), traceback=traceback.format_exc()[-4000:])
    return out


def _run_cli(case: Case, work: Path) -> dict[str, Any]:
    from epnml import cli

    target = work / "out.csv"
    if case.pipeline == "landforms":
        argv = ["ingest", "landforms", *map(str, case.files), "--no-progress"]
    else:
        argv = ["predict", case.pipeline, *map(str, case.files), "-o", str(target),
                "--no-progress"]
    err, saved = io.StringIO(), (sys.stdout, sys.stderr)
    sys.stdout, sys.stderr = io.StringIO(), err
    try:
        code: Any = cli.main(argv)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # noqa: BLE001 - what the interpreter would print
        code = 1
        err.write(traceback.format_exc())
    finally:
        sys.stdout, sys.stderr = saved
    out: dict[str, Any] = {"code": code, "stderr": err.getvalue()[-20000:], "written": False}
    if target.is_file():
        import pandas as pd

        text = target.read_text(errors="replace")
        try:
            frame = pd.read_csv(target) if text.strip() else pd.DataFrame()
        except (ValueError, pd.errors.ParserError):
            frame = pd.DataFrame({"unreadable": [text[:200]]})
        n, bad, big = _frame_numbers(frame)
        out.update(written=True, n_records=n, nonfinite=bad, max_abs=big, text=text[:200000])
    return out


def _run_http(case: Case, work: Path) -> dict[str, Any]:
    from dataclasses import replace

    from fastapi.testclient import TestClient

    from epnml.api import create_app
    from epnml.config import load_settings

    # fork: the preview worker starts from this child, whose pipeline is already loaded
    # (forkserver would import torch again for each of the ~200 cases)
    settings = replace(load_settings(), dsn=BAD_DSN, jobs_dir=work / "jobs", job_worker=0,
                       api_token="adversarial-token", preview_start_method="fork")
    client = TestClient(create_app(settings), raise_server_exceptions=False)
    files = [("file", (os.fsencode(p.name).decode("latin-1"), p.read_bytes(),
                       "application/octet-stream")) for p in case.files]
    response = client.post(f"/preview/{case.pipeline}", params={"RESPONSEFORMAT": "json"},
                           files=files)
    out: dict[str, Any] = {"status": response.status_code, "body": response.text[:200000],
                           "jobs_dir": str(settings.jobs_dir)}
    try:
        body = response.json()
    except ValueError:
        body = None
    out["json"] = isinstance(body, dict)
    if isinstance(body, dict):
        out["detail"] = body.get("detail")
        rows = body.get("rows") or []
        bad, big = _numbers(rows)
        out.update(n_rows=len(rows), nonfinite=bad, max_abs=big)
    return out


_CHANNELS = {"inprocess": _run_inprocess, "cli": _run_cli, "http": _run_http}


def _fork_case(case: Case, channel: str, cap_mb: int | None) -> dict[str, Any]:
    """Run one (case, channel) in a forked child under the caps; its result and peak RSS."""
    with tempfile.TemporaryDirectory(prefix=f"adv-{channel}-") as tmp:
        work = Path(tmp)
        result_path = work / "result.json"
        pid = os.fork()
        if pid == 0:  # child
            code = 0
            try:
                if cap_mb:
                    cap = cap_mb * 1024 * 1024
                    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
                signal.alarm(CASE_TIMEOUT_S)
                res = _CHANNELS[channel](case, work)
                res["vm_peak_kb"] = _vm_peak_kb()
                result_path.write_text(json.dumps(res, default=str))
            except BaseException:  # noqa: BLE001
                try:
                    result_path.write_text(json.dumps(
                        {"harness_error": traceback.format_exc()[-4000:]}))
                except BaseException:  # noqa: BLE001
                    code = 3
            finally:
                os._exit(code)
        _, status, usage = os.wait4(pid, 0)
        if result_path.is_file():
            try:
                res = json.loads(result_path.read_text())
            except ValueError:
                res = {"harness_error": "unreadable result"}
        else:
            res = {"harness_error": "the child left no result"}
        if os.WIFSIGNALED(status):
            sig = os.WTERMSIG(status)
            res["killed"] = ("timeout" if sig == signal.SIGALRM
                             else f"signal {signal.Signals(sig).name}")
        res["maxrss_kb"] = usage.ru_maxrss
        return res


def _vm_peak_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmPeak:"):
            return int(line.split()[1])
    return 0


def _baseline_files(group: str, root: Path) -> list[Path]:
    b = root / "base"
    good = {
        "icme": [b / "solarwind" / "simulated_wind_20240301_20240303_10min.csv"],
        "crossings": [b / "mag" / "mag_orbit0123.LBL"],
        "units": sorted((b / "mascs").glob("*.lbl")),
        "minerals": [],
        "pits": [b / "landforms" / "synthetic_mars_eqc.tif"],
        "craters": [b / "landforms" / "synthetic_mars_geographic.tif"],
        "mounds": [b / "mounds" / "simulated_mounds_dtm.tif"],
        "ice": [b / "landforms" / "synthetic_mars_eqc.tif"],
        "landforms": [b / "mounds" / "simulated_mounds_dtm.tif"],
    }
    return good[group]


def worker(root: Path, group: str, out_json: Path) -> None:
    """Run every case of one pipeline group through its channels (in a fresh process)."""
    os.environ.update({"OMP_NUM_THREADS": "1", "EPNML_WORKERS": "1", "EPNML_DSN": BAD_DSN})
    import fastapi.testclient  # noqa: F401

    import epnml.api.app  # noqa: F401 - loaded before the forks
    import epnml.cli  # noqa: F401
    from epnml.ingest.executor import get_stage

    if group != "landforms":
        get_stage(group, None)
    else:
        import epnml.ingest.routing  # noqa: F401
    results: dict[str, Any] = {"cases": {}, "baseline": {}}
    good = _baseline_files(group, root)
    if good:
        base_case = Case(f"baseline_{group}", group, "baseline", tuple(good), "cleaned")
        results["baseline"] = _fork_case(base_case, "inprocess", None)
    for case in load_cases(root):
        if case.pipeline != group:
            continue
        for channel in case.channels:
            if channel == "http" and group == "landforms":
                continue
            results["cases"][f"{case.id}-{channel}"] = _fork_case(case, channel, CAP_MB)
    out_json.write_text(json.dumps(results, default=str))


# --------------------------------------------------------------------------- test side

@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Case]]:
    root = tmp_path_factory.mktemp("adversarial")
    cases = make_adversarial_corpus(root)
    return root, {c.id: c for c in cases}


@pytest.fixture(scope="module")
def outcomes(corpus: tuple[Path, dict[str, Case]]) -> dict[str, Any]:
    """Every (case, channel) result, one worker process per pipeline group."""
    root, _ = corpus
    results: dict[str, Any] = {"cases": {}, "baseline": {}}
    env = {**os.environ, "OMP_NUM_THREADS": "1", "EPNML_WORKERS": "1", "EPNML_DSN": BAD_DSN}
    for group in GROUPS:
        out = root / f"results_{group}.json"
        proc = subprocess.run([sys.executable, "-m", "tests.test_adversarial", "worker", str(root),
                               group, str(out)],
                              env=env, capture_output=True, text=True, cwd=HERE.parent)
        if proc.returncode != 0 or not out.is_file():
            raise RuntimeError(f"worker {group} failed ({proc.returncode}):\n"
                               f"{proc.stderr[-3000:]}")
        got = json.loads(out.read_text())
        results["cases"].update(got["cases"])
        results["baseline"][group] = got["baseline"]
    (root / "results.json").write_text(json.dumps(results, indent=1, default=str))
    report = os.environ.get("EPNML_ADVERSARIAL_REPORT")
    if report:
        Path(report).write_text(json.dumps(results, indent=1, default=str))
    return results


def _secret_leaks(*texts: Any) -> list[str]:
    joined = "\n".join(str(t) for t in texts if t)
    return [s for s in (SECRET_MARKER, PASSWD_CONTENT) if s in joined]


def _names_file(case: Case, text: str, http: bool = False) -> bool:
    names = [n for n in case.names() if n]
    if http:
        names.append("upload")  # names that are not plain ASCII are renamed on upload
    return any(n in text for n in names)


def _problems(case: Case, channel: str, res: dict[str, Any], root: Path) -> list[str]:
    p: list[str] = []
    if "harness_error" in res:
        p.append(f"no result: {res.get('killed') or ''} {res['harness_error'][-600:]}")
        return p
    if res.get("killed"):
        p.append(f"killed: {res['killed']} (cap {CAP_MB} MB / {CASE_TIMEOUT_S} s)")
    texts = [res.get(k) for k in ("message", "traceback", "text", "stderr", "body")]
    if leaks := _secret_leaks(*texts):
        p.append(f"read outside the granule: output carries {leaks}")
    refused = case.expect == "refused"
    if channel == "inprocess":
        if res.get("ok"):
            if refused:
                p.append(f"silent rows: accepted with {res['n_records']} record(s), "
                         f"{res['n_rows']} row(s)")
        else:
            cls, msg = res.get("exc_class"), str(res.get("message"))
            if not (res.get("granule_error") or res.get("project_value_error")):
                p.append(f"traceback: {cls}: {msg[:300]}")
            elif not refused:
                p.append(f"refused a cleanable input: {cls}: {msg[:300]}")
            else:
                if case.limit and not res.get("limit"):
                    p.append(f"limit not enforced as LimitExceeded: {cls}: {msg[:300]}")
                if "\n" in msg.strip():
                    p.append(f"message is not one line: {msg[:300]!r}")
                if not _names_file(case, msg):
                    p.append(f"message does not name the file: {msg[:300]}")
                if case.fragment and not re.search(case.fragment, msg, re.I):
                    p.append(f"message lacks /{case.fragment}/: {msg[:300]}")
        if not refused and res.get("ok"):
            p += _clean_problems(case, res, records=True)
    elif channel == "cli":
        err, code = str(res.get("stderr", "")), res.get("code")
        if "Traceback" in err:
            p.append(f"traceback on stderr: {err[-600:]}")
        if refused:
            want = {2} if case.limit else {1, 2}
            if code not in want:
                p.append(f"exit code {code}, expected {sorted(want)}: {err[-300:]}")
            said = [ln for ln in err.splitlines() if ln.startswith(("epnml:", "  FAILED"))]
            if not any(_names_file(case, ln) for ln in said):
                p.append(f"no message line names the file: {err[-300:]}")
            if res.get("written") and res.get("n_records"):
                p.append(f"silent rows: wrote {res['n_records']} row(s)")
        else:
            if code != 0:
                p.append(f"exit code {code} on a cleanable input: {err[-300:]}")
            elif res.get("written"):
                p += _clean_problems(case, res, records=False)
    else:
        status, detail, body = res.get("status"), res.get("detail"), str(res.get("body"))
        # a pointer value the user wrote into the label may come back; other paths may not
        own = body.replace(str(root / "outside"), "<pointer>")
        if "Traceback" in body:
            p.append("traceback in the body")
        if not res.get("json"):
            p.append(f"body is not JSON: {status} {body[:200]}")
        for server_path in (str(root), res.get("jobs_dir", "/nonexistent"), "/tmp/", "/var/"):
            if server_path and server_path in own:
                p.append(f"body reveals the server path {server_path}")
        if refused:
            want = {413} if case.limit else {413, 422}
            if status not in want:
                p.append(f"HTTP {status}, expected {sorted(want)}: {body[:300]}")
            elif not isinstance(detail, str) or not _names_file(case, detail, http=True):
                p.append(f"detail does not name the file: {body[:300]}")
        else:
            if status != 200:
                p.append(f"HTTP {status} on a cleanable input: {body[:300]}")
            else:
                p += _clean_problems(case, res, records=False)
    return p


def _clean_problems(case: Case, res: dict[str, Any], records: bool) -> list[str]:
    p = []
    if res.get("nonfinite"):
        p.append(f"{res['nonfinite']} non-finite value(s) in the output")
    if float(res.get("max_abs") or 0.0) > SANE:
        p.append(f"insane value in the output: |x| = {res['max_abs']:g}")
    if records and not res.get("n_records"):
        p.append("no records: a cleaned input must still give results")
    if records and case.injected is not None and res.get("invalid_total") != case.injected:
        p.append(f"invalid_values counts {res.get('invalid')} (total "
                 f"{res.get('invalid_total')}), {case.injected} non-physical value(s) written")
    return p


def test_corpus_covers_the_issue(corpus: tuple[Path, dict[str, Case]]) -> None:
    root, cases = corpus
    assert len(cases) >= 100
    assert {c.pipeline for c in cases.values()} == set(GROUPS)
    per_channel = {ch: sum(ch in c.channels for c in cases.values()) for ch in
                   ("inprocess", "cli", "http")}
    assert min(per_channel.values()) >= 100, per_channel
    readme = (HERE / "adversarial" / "README.md").read_text()
    families = {c.family for c in cases.values()}
    assert families == set(re.findall(r"^- `([a-z0-9-]+)`", readme, re.M))
    for c in cases.values():
        assert all(os.path.lexists(p) for p in c.files), c.id
    assert SECRET_MARKER in (root / "outside" / "secret.txt").read_text()


@pytest.mark.parametrize("case_id, channel", _params())
def test_case(case_id: str, channel: str, corpus: tuple[Path, dict[str, Case]],
              outcomes: dict[str, Any]) -> None:
    root, cases = corpus
    res = outcomes["cases"][f"{case_id}-{channel}"]
    problems = _problems(cases[case_id], channel, res, root)
    assert not problems, f"{case_id} ({channel}): " + " | ".join(problems)


def _normal(text: str, cases: list[Case], root: Path) -> str:
    # longest folder first: "x_dotdot" is a prefix of its twin "x_dotdot_missing"
    for c in sorted(cases, key=lambda c: len(str(c.folder)), reverse=True):
        text = text.replace(str(c.folder), "<dir>")
    text = text.replace(str(root / "outside"), "<outside>")
    return re.sub(r"secret|absent", "X", text)


@pytest.mark.parametrize("case_id", [s.id for s in SPECS if s.twin])
def test_pointer_to_existing_and_absent_path_read_the_same(
        case_id: str, corpus: tuple[Path, dict[str, Case]], outcomes: dict[str, Any]) -> None:
    root, cases = corpus
    case = cases[case_id]
    twin = cases[case.twin]
    for channel in ("inprocess", "http"):
        if channel not in case.channels or case.pipeline == "landforms" and channel == "http":
            continue
        a = outcomes["cases"][f"{case.id}-{channel}"]
        b = outcomes["cases"][f"{twin.id}-{channel}"]
        key = "message" if channel == "inprocess" else "body"
        assert (a.get("status"), a.get("ok")) == (b.get("status"), b.get("ok")), channel
        assert _normal(str(a.get(key)), [case, twin], root) == \
            _normal(str(b.get(key)), [case, twin], root), channel


def test_peak_memory_under_the_cap(outcomes: dict[str, Any]) -> None:
    """Every child stayed under the address-space cap (no MemoryError, no kill), and the
    normal path measured by the baselines fits well under it."""
    peaks = {k: v.get("maxrss_kb", 0) for k, v in outcomes["cases"].items()}
    assert len(peaks) >= 300
    over = {k: v for k, v in outcomes["cases"].items()
            if v.get("killed") or "MemoryError" in str(v.get("traceback", ""))
            + str(v.get("stderr", "")) + str(v.get("body", "")) + str(v.get("harness_error"))}
    lines = [f"{g}: baseline rss {b.get('maxrss_kb', 0) / 1024:.0f} MB, vm "
             f"{b.get('vm_peak_kb', 0) / 1024:.0f} MB"
             for g, b in outcomes["baseline"].items() if b]
    worst = max(peaks.items(), key=lambda kv: kv[1])
    print("\n".join(lines) + f"\nlargest case rss: {worst[0]} {worst[1] / 1024:.0f} MB")
    for g, b in outcomes["baseline"].items():
        if b:
            assert b.get("vm_peak_kb", 0) < CAP_MB * 1024 * 0.75, (g, b.get("vm_peak_kb"))
    assert not over, "over the memory/time cap: " + ", ".join(
        f"{k} ({v.get('killed') or 'MemoryError'})" for k, v in sorted(over.items()))
    assert worst[1] < CAP_MB * 1024


@pytest.mark.parametrize("case_id", SUBPROCESS_CASES)
def test_cli_subprocess(case_id: str, corpus: tuple[Path, dict[str, Case]],
                        tmp_path: Path) -> None:
    """The real ``epnml`` command agrees with the in-process CLI channel."""
    root, cases = corpus
    case = cases[case_id]
    out = tmp_path / "out.csv"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "EPNML_DSN": BAD_DSN}
    proc = subprocess.run([str(Path(sys.executable).with_name("epnml")), "predict",
                           case.pipeline, *map(str, case.files), "-o", str(out),
                           "--no-progress"], env=env, capture_output=True, text=True,
                          timeout=300)
    res = {"code": proc.returncode, "stderr": proc.stderr, "written": out.is_file()}
    if out.is_file():
        import pandas as pd

        frame = pd.read_csv(out) if out.read_text().strip() else pd.DataFrame()
        n, bad, big = _frame_numbers(frame)
        res.update(n_records=n, nonfinite=bad, max_abs=big, text=out.read_text())
    problems = _problems(case, "cli", res, root)
    assert not problems, f"{case_id} (epnml subprocess): " + " | ".join(problems)


if __name__ == "__main__" and len(sys.argv) == 5 and sys.argv[1] == "worker":
    worker(Path(sys.argv[2]), sys.argv[3], Path(sys.argv[4]))
