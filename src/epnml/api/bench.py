"""Benchmark of the HTTP service: preview latency and 20 concurrent clients (issue #6).

Figures, never tests. :func:`prepare` ingests three SIMULATED granules of the sizes the
issue names (one week of 10-min solar wind for ``icme``, one MESSENGER orbit for
``crossings``, one 1024x1024 Mars tile for ``pits``) into the database of ``settings``;
:func:`run` starts ``epnml serve --no-dachs`` on a free port with that database, measures
preview p50/p90 per pipeline (first call excluded: it loads the model), then runs the
clients for ``seconds`` and counts errors.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from epnml.config import Settings, load_settings


def _ingest(settings: Settings, pipeline: str, paths: list[Path]) -> str:
    from epnml.ingest.runner import run_pipeline

    summary = run_pipeline(pipeline, paths, mode="ingest", settings=settings, workers=1,
                           progress=False, keep_rows=True)
    if summary.n_failed or not summary.rows:
        raise RuntimeError(f"bench: {pipeline} wrote no rows: {summary.text()}")
    return str(summary.rows[0]["granule_uid"])


def _pits_tile(path: Path, size: int = 1024, seed: int = 7) -> Path:
    """A SIMULATED 1024x1024 equirectangular Mars tile with dark pit-like discs."""
    from PIL import Image

    from epnml.ingest.simulate.geotiff import write_mars_geotiff

    rng = np.random.default_rng(seed)
    noise = rng.normal(0, 1, (size // 8 + 2, size // 8 + 2)).astype(np.float32)
    smooth = np.asarray(Image.fromarray(noise, mode="F").resize((size, size)), dtype=float)
    img = 0.55 + 0.06 * smooth + rng.normal(0, 0.015, (size, size))
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    for _ in range(12):
        cx, cy, r = rng.uniform(60, size - 60), rng.uniform(60, size - 60), rng.uniform(8, 24)
        d = np.hypot(xx - cx, yy - cy)
        img[d < r] = 0.12 + 0.05 * (xx[d < r] - cx) / r
        img[(d >= r) & (d < r + 3) & (xx > cx)] = 0.85
    pixels = (np.clip(img, 0, 1) * 255).astype(np.uint8)
    return write_mars_geotiff(path, pixels, lon0=135.0, lat0=-4.9, pixel_m=25.0)


def prepare(settings: Settings, workdir: Path,
            pipelines: tuple[str, ...] = ("icme", "crossings", "pits")) -> dict[str, str]:
    """Ingest the SIMULATED bench granules; return a granule_uid per pipeline."""
    from epnml.ingest.simulate.messenger import simulate_orbit, write_pds3
    from epnml.ingest.simulate.solarwind import simulate_solar_wind, write_csv

    workdir.mkdir(parents=True, exist_ok=True)
    frame, _ = simulate_solar_wind("2023-03-01", days=7, seed=5, n_icmes=2)
    week = workdir / "wind_simulated_bench_20230301.csv"
    write_csv(frame, week)
    mag = workdir / "mag"
    mag.mkdir(exist_ok=True)
    write_pds3(simulate_orbit(905, 41), mag)
    inputs = {"icme": lambda: [week], "crossings": lambda: sorted(mag.iterdir()),
              "pits": lambda: [_pits_tile(workdir / "bench_tile_1024.tif")]}
    return {name: _ingest(settings, name, inputs[name]()) for name in pipelines}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _preview(base: str, uid: str, timeout: float = 300) -> float:
    """One GET /preview (VOTable); seconds, or raises on anything but 200."""
    url = f"{base}/preview?" + urllib.parse.urlencode({"ID": uid})
    t0 = time.perf_counter()
    with urllib.request.urlopen(url, timeout=timeout) as response:
        response.read()
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}")
    return time.perf_counter() - t0


def _quantiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    q = statistics.quantiles(values, n=10) if len(values) > 1 else [values[0]] * 9
    q20 = statistics.quantiles(values, n=20) if len(values) > 1 else [values[0]] * 19
    return {"p50_s": round(statistics.median(values), 4), "p90_s": round(q[8], 4),
            "p95_s": round(q20[18], 4), "mean_s": round(statistics.fmean(values), 4),
            "n": len(values)}


def latency(base: str, uids: dict[str, str], repeats: int = 20) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pipeline, uid in uids.items():
        _preview(base, uid)  # warm-up: loads the model into the server's stage cache
        out[pipeline] = _quantiles([_preview(base, uid) for _ in range(repeats)])
    return out


def load(base: str, uids: dict[str, str], clients: int = 20, seconds: float = 60
         ) -> dict[str, Any]:
    """``clients`` threads previewing the granules in turn for ``seconds``; errors counted
    (503 "busy" answers apart), latency quantiles overall and per pipeline."""
    times: list[float] = []
    per: dict[str, list[float]] = {name: [] for name in uids}
    errors: list[str] = []
    busy: list[int] = []
    lock = threading.Lock()
    stop = time.monotonic() + seconds
    items = list(uids.items())

    def client(k: int) -> None:
        i = k
        while time.monotonic() < stop:
            name, uid = items[i % len(items)]
            try:
                dt = _preview(base, uid)
                with lock:
                    times.append(dt)
                    per[name].append(dt)
            except urllib.error.HTTPError as exc:
                with lock:
                    (busy.append(1) if exc.code == 503 else errors.append(str(exc)))
            except (OSError, RuntimeError) as exc:
                with lock:
                    errors.append(str(exc))
            i += 1

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    return {"clients": clients, "seconds": round(wall, 1),
            "requests": len(times) + len(errors) + len(busy),
            "errors": len(errors), "busy_503": len(busy), "first_errors": errors[:3],
            "throughput_rps": round(len(times) / wall, 2), **_quantiles(times),
            "per_pipeline": {name: _quantiles(v) for name, v in per.items()}}


@contextlib.contextmanager
def serve(settings: Settings, workdir: Path, env: dict[str, str] | None = None,
          extra: dict[str, str] | None = None) -> Iterator[str]:
    """``epnml serve --no-dachs`` on a free port over ``settings.dsn``; yields its base URL."""
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    workdir.mkdir(parents=True, exist_ok=True)
    full_env = dict(env or os.environ, EPNML_DSN=settings.dsn, EPNML_API_URL=base,
                    EPNML_JOBS_DIR=str(workdir / "jobs"), EPNML_JOB_WORKER="0",
                    **(extra or {}))
    log = (workdir / "serve.log").open("ab")
    proc = subprocess.Popen([str(Path(sys.prefix) / "bin" / "epnml"), "serve", "--no-dachs",
                             "--host", "127.0.0.1", "--port", str(port),
                             "--log-level", "warning"],
                            env=full_env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=5):
                    break
            except urllib.error.HTTPError:
                break  # answering (503 = database down would show in the previews)
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"epnml serve did not start (see {log.name})") from None
                time.sleep(0.3)
        yield base
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()


def _load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def previews(settings: Settings, workdir: Path, env: dict[str, str] | None = None,
             levels: tuple[int, ...] = (1, 20, 50), seconds: float = 30,
             pools: tuple[tuple[int, int], ...] = ((1, 1), (1, 8), (0, 1), (0, 8))
             ) -> dict[str, Any]:
    """Issue #17: preview p50/p95 at ``levels`` concurrent clients for a 1024x1024 tile
    (pits) and a one-week ICME window, for each (``preview_workers``, ``preview_batch``)
    of ``pools``: (1, 1) is the former single slot, (0, 8) the default (one worker per
    core, batches of up to 8).

    The server runs with ``preview_queue`` = the largest level, so that every client is
    admitted (the default queue of 4 answers 503 beyond workers + 4: a bench of queueing,
    not of the workers). Each level starts after a warm-up that loads the models in every
    worker; the machine's load averages are recorded beside each figure."""
    from epnml.api.workers import worker_count

    uids = prepare(settings, workdir / "inputs", pipelines=("icme", "pits"))
    out: dict[str, Any] = {"granules": uids, "data": "SIMULATED granules: a one-week 10-min "
                           "solar-wind window (icme), one 1024x1024 Mars tile (pits)",
                           "preview_queue": max(levels), "seconds_per_level": seconds}
    for size, batch in pools:
        extra = {"EPNML_PREVIEW_WORKERS": str(size), "EPNML_PREVIEW_QUEUE": str(max(levels)),
                 "EPNML_PREVIEW_BATCH": str(batch)}
        runs: dict[str, Any] = {"preview_workers": worker_count(size), "preview_batch": batch}
        with serve(settings, workdir / f"workers_{size}_batch_{batch}", env, extra) as base:
            load(base, uids, clients=2 * worker_count(size), seconds=5)  # models in every worker
            for n in levels:
                before = _load_average()
                runs[f"clients_{n}"] = {**load(base, uids, n, seconds),
                                        "load_average_before": before,
                                        "load_average_after": _load_average()}
        out[f"workers_{worker_count(size)}_batch_{batch}"] = runs
    return out


def run(settings: Settings | None = None, workdir: Path = Path("/var/tmp/epnml-api-bench"),
        clients: int = 20, seconds: float = 60, repeats: int = 20,
        env: dict[str, str] | None = None) -> dict[str, Any]:
    """Prepare the granules, serve them on a free port, measure; JSON-able results."""
    settings = settings or load_settings()
    uids = prepare(settings, workdir / "inputs")
    with serve(settings, workdir, env) as base:
        results = {"cpus": os.cpu_count(), "granules": uids,
                   "preview_latency": latency(base, uids, repeats),
                   "concurrent": load(base, uids, clients, seconds)}
    return results


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("-o", "--output", type=Path)
    args = parser.parse_args(argv)
    results = run(clients=args.clients, seconds=args.seconds, repeats=args.repeats)
    text = json.dumps(results, indent=2)
    print(text)
    if args.output:
        args.output.write_text(text)
    return 1 if results["concurrent"]["errors"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
