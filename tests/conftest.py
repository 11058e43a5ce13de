"""Shared fixtures: the real stack (PostgreSQL/pgSphere + DaCHS) and the shared data.

The stack tests run against their own DaCHS instance and database (``epnml_test``
on port 8098), provisioned by the same ``service/provision.sh`` the README uses,
so running the tests never touches the service's rows. Each pipeline ingests through
its own session fixture (``ingested_icme``, ``ingested_crossings``, ...; docs/testing.md).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from epnml.config import Settings, load_settings, read_dsn_file
from epnml.ml.checkpoints import WEIGHTS_DIR, available_versions

REPO = Path(__file__).resolve().parent.parent
TEST_ROOT = Path(os.environ.get("EPNML_TEST_ROOT", "/var/tmp/epnml-test"))
TEST_DB = os.environ.get("EPNML_TEST_DB", "epnml_test")
TEST_PORT = int(os.environ.get("EPNML_TEST_PORT", "8098"))
TEST_API_PORT = int(os.environ.get("EPNML_TEST_API_PORT", "8099"))
#: the icme version the service tests ingest with: their expected rows are 1.0.0's on the
#: simulated fixture (2.x, the default, sees hourly means: docs/pipelines/icme.md).
ICME_VERSION = "1.0.0"
#: the craters rows the stack tests expect are 1.0.0's: the synthetic fixture craters were
#: drawn for it. The 2.x default (trained on real CTX tiles, not georeferenced) is checked
#: against its card on a real validation tile in tests/test_craters_ctx.py.
CRATERS_VERSION = "1.0.0"
#: the pits version the stack ingests: the default (newest committed weights), as a user's
#: `epnml ingest` would; the stack's pits tests are written for it.
PITS_VERSION = available_versions("pits", WEIGHTS_DIR)[-1]
PRODUCT_TABLES = ("events", "crossings", "landforms", "units", "meteors", "aurora")


def shared_data_dir() -> Path:
    """The one setting (EPNML_SHARED_DATA, default ../shared/data), as the code reads it."""
    return load_settings().shared_data


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = shared_data_dir()
    if not path.is_dir():
        pytest.skip(f"real reference data not found at {path} (set EPNML_SHARED_DATA)")
    return path


#: bookkeeping and product tables emptied before each DB-only test (migrated_database).
STORE_TABLES = ("epnml.events, epnml.crossings, epnml.landforms, epnml.units, epnml.meteors, "
                "epnml.aurora, "
                "epnml.granule_runs, epnml.runs, epnml.model_versions, epnml.granule_sources, "
                "epnml.granule_versions, epnml.solarwind_samples, epnml.solarwind_granules, "
                "epnml.solarwind_series, epnml.retirements")


def _psql(sql: str, db: str = "postgres") -> None:
    """SQL as the postgres superuser, on stdin (passwords never on a command line)."""
    subprocess.run(["runuser", "-u", "postgres", "--", "psql", "-q", "-v", "ON_ERROR_STOP=1",
                    "-d", db], input=sql, check=True, capture_output=True, text=True)


def migrated_database(suffix: str) -> str:
    """A fresh migrated database ``<EPNML_TEST_DB>_<suffix>`` for DB-only tests; its DSN.

    It belongs to a role of its own with a generated password (roles are cluster-wide:
    never the service's ``epnml`` role), and is recreated each session (disposable).
    """
    import secrets

    from epnml.db import migrate

    if os.geteuid() != 0 or shutil.which("runuser") is None or \
            shutil.which("pg_ctlcluster") is None:
        pytest.skip("needs root and PostgreSQL 15")
    db = f"{TEST_DB}_{suffix}"
    role, password = f"{db}_owner", secrets.token_urlsafe(24)
    _psql(f"""SET client_min_messages = warning;
DROP DATABASE IF EXISTS {db} WITH (FORCE);
DO $$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{role}') THEN
    CREATE ROLE {role} LOGIN;
  END IF;
END $$;
ALTER ROLE {role} PASSWORD '{password}';
CREATE DATABASE {db} OWNER {role};""")
    _psql("SET client_min_messages = warning; CREATE EXTENSION IF NOT EXISTS pg_sphere;"
          " CREATE EXTENSION IF NOT EXISTS btree_gist;"
          f" CREATE SCHEMA IF NOT EXISTS epnml AUTHORIZATION {role};", db=db)
    dsn = f"host=localhost dbname={db} user={role} password={password}"
    migrate(replace(load_settings(), dsn=dsn))
    return dsn


def empty_store_settings(dsn: str, tmp_path: Path, api_url: str) -> Settings:
    """Settings on a migrated_database() whose product and bookkeeping tables are empty."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {STORE_TABLES}")
    return replace(load_settings(), dsn=dsn, data_dir=tmp_path / "static", api_url=api_url,
                   workers=1)


@dataclass(frozen=True)
class Stack:
    tap_url: str
    server_url: str
    env: dict[str, str]
    dachs_root: Path
    #: the owner role's DSN (schema changes, TRUNCATE); tests write as the ingest role
    owner_dsn: str = ""

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a command with the test instance's environment (EPNML_*, GAVOSETTINGS)."""
        return subprocess.run(args, env=self.env, text=True, capture_output=True, check=check,
                              cwd=REPO)


def _stack_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "EPNML_DACHS_ROOT": str(TEST_ROOT / "gavo"),
        "EPNML_DB": TEST_DB,
        "EPNML_PORT": str(TEST_PORT),
        "EPNML_VENV": str(Path(sys.prefix)),
        "GAVOSETTINGS": str(TEST_ROOT / "gavo" / "gavo.rc"),
        # roles of this instance only (roles are cluster-wide); provisioning generates
        # their passwords into <root>/etc/epnml-dsn-{owner,ingest} (read in `stack`)
        "EPNML_DB_OWNER": f"{TEST_DB}_owner",
        "EPNML_DB_INGEST": f"{TEST_DB}_ingest",
        "EPNML_DSN_FILE": str(TEST_ROOT / "gavo" / "etc" / "epnml-dsn-ingest"),
        "EPNML_DATA_DIR": str(TEST_ROOT / "gavo" / "web" / "nv_static" / "epnml"),
        "EPNML_SERVER_URL": f"http://localhost:{TEST_PORT}",
        # the re-inference / DataLink service of the test instance (tests start it)
        "EPNML_API_URL": f"http://localhost:{TEST_API_PORT}",
    })
    env.pop("EPNML_DSN", None)  # provisioning migrates as the owner, never as a given DSN
    return env


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    """Provision and start the test instance; empty its product tables first."""
    if os.geteuid() != 0 or shutil.which("pg_ctlcluster") is None:
        pytest.skip("the stack tests need root and PostgreSQL 15 (run `make test`)")
    env = _stack_env()
    proc = subprocess.run(["bash", str(REPO / "service" / "provision.sh"), "stack"], env=env,
                          text=True, capture_output=True, cwd=REPO)
    if proc.returncode != 0:
        raise RuntimeError(f"provisioning the test stack failed:\n{proc.stdout}\n{proc.stderr}")
    import psycopg

    etc = TEST_ROOT / "gavo" / "etc"
    env["EPNML_DSN"] = read_dsn_file(etc / "epnml-dsn-ingest")
    owner_dsn = read_dsn_file(etc / "epnml-dsn-owner")
    # The test instance is disposable: start every session from empty tables (the owner may).
    with psycopg.connect(owner_dsn) as conn:
        tables = ", ".join(f"epnml.{t}" for t in PRODUCT_TABLES)
        conn.execute(f"TRUNCATE {tables}, epnml.granule_runs, epnml.runs, epnml.model_versions, "
                     "epnml.jobs, epnml.inference_log, epnml.solarwind_samples, "
                     "epnml.solarwind_granules, epnml.solarwind_series, epnml.retirements")
        # the training datasets: exactly the committed manifests (provisioning registered
        # them; rows a test inserted earlier into this reused database must not survive)
        from epnml.datasets.register import manifest_files, register_all

        conn.execute("TRUNCATE epnml.dataset_samples, epnml.dataset_sources, "
                     "epnml.dataset_versions")
        register_all(conn, manifest_files(REPO / "ml" / "datasets"))
    for key in ("EPNML_DSN", "EPNML_DSN_FILE", "EPNML_DATA_DIR", "EPNML_SERVER_URL",
                "EPNML_API_URL", "GAVOSETTINGS"):
        os.environ[key] = env[key]
    yield Stack(f"http://localhost:{TEST_PORT}/tap", f"http://localhost:{TEST_PORT}", env,
                TEST_ROOT / "gavo", owner_dsn)
    subprocess.run(["bash", str(REPO / "service" / "provision.sh"), "stop"], env=env,
                   capture_output=True, cwd=REPO)


@dataclass(frozen=True)
class Ingest:
    """One pipeline's inputs ingested through the real CLI on the shared test instance."""

    stack: Stack
    #: the ``epnml ingest`` run (its exit code and summary lines)
    result: subprocess.CompletedProcess[str]
    #: the folder the inputs were written to
    inputs: Path
    #: named input files (the fixture generator's names)
    files: dict[str, Path] = field(default_factory=dict)
    #: what the simulation put in: ICME intervals (icme), frame attrs per orbit (crossings)
    truth: list[Any] = field(default_factory=list)

    def n_rows(self, model: str = "") -> int:
        """Rows the CLI reports written (its summary lines; of one model of a routed run)."""
        lines = [m for m in SUMMARY.finditer(self.result.stderr)
                 if not model or m.group("model") == model]
        if not lines:
            raise AssertionError(f"no summary line for {model or 'the run'}:\n"
                                 f"{self.result.stderr}")
        return sum(int(m.group("rows")) for m in lines)


#: the CLI's summary line of one run (epnml.ingest.runner.RunSummary.text).
SUMMARY = re.compile(r"^run \S+ \((?P<model>\w+), ingest, model [^)]*\): \d+ granule\(s\) ok, "
                     r"\d+ failed, (?P<rows>\d+) row\(s\)", re.M)


def _epnml(stack: Stack, pipeline: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``epnml ingest PIPELINE ...`` of this environment, one worker, no progress bar."""
    return stack.run(str(Path(sys.prefix) / "bin" / "epnml"), "ingest", pipeline,
                     "--no-progress", "--workers", "1", *args, check=False)


#: synthetic orbits (orbit number, seed; no shared data needed) for the crossings pipeline.
CROSSINGS_ORBITS = ((900, 31), (901, 32))
#: the simulated solar wind of ``ingested_icme``: 28 days from this day, three ICMEs.
ICME_GOOD = "wind_simulated_20210301.csv"
ICME_BROKEN = "wind_broken_20210401.csv"

# One session fixture per pipeline: a test requests the pipelines whose rows it reads, and
# each ingests once per session on the shared instance (``stack``), on first request.
# Tables are shared (pits, craters, mounds and ice all write epnml.landforms): tests select
# their own rows (ml_model_name, source_image, obs_id), never "every row of the table".


@pytest.fixture(scope="session")
def ingested_icme(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Ingest:
    """28 days of simulated solar wind with three ICMEs, plus one broken CSV (--keep-going)."""
    from epnml.ingest.simulate.solarwind import simulate_solar_wind, write_csv

    inputs = tmp_path_factory.mktemp("icme_inputs")
    frame, truth = simulate_solar_wind("2021-03-01", days=28, seed=7, n_icmes=3)
    write_csv(frame, inputs / ICME_GOOD)
    (inputs / ICME_BROKEN).write_text("time,bx,by\n2021-04-01 00:00:00,1,2\n")
    result = _epnml(stack, "icme", "--keep-going", "--model-version", ICME_VERSION, str(inputs))
    return Ingest(stack, result, inputs, {"good": inputs / ICME_GOOD,
                                          "broken": inputs / ICME_BROKEN}, list(truth))


@pytest.fixture(scope="session")
def ingested_crossings(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Ingest:
    """Two simulated (synthetic) MESSENGER orbits as PDS3 products."""
    from epnml.ingest.simulate.messenger import simulate_orbit, write_pds3

    inputs = tmp_path_factory.mktemp("crossings_inputs")
    truth = []
    for orbit, seed in CROSSINGS_ORBITS:
        frame = simulate_orbit(orbit, seed)  # no shared data given: a synthetic orbit
        write_pds3(frame, inputs)
        truth.append(dict(frame.attrs))
    return Ingest(stack, _epnml(stack, "crossings", str(inputs)), inputs, truth=truth)


@pytest.fixture(scope="session")
def ingested_units(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Ingest:
    """A simulated MASCS-like grid across 0 deg E (PDS3), through the UMAP path."""
    from epnml.ingest.simulate.units import write_simulated_mascs

    inputs = tmp_path_factory.mktemp("units_inputs")
    write_simulated_mascs(inputs, lon_range=(340.0, 20.0), lat_range=(-30.0, 10.0), seed=2026)
    files = sorted(str(p) for p in inputs.iterdir() if p.is_file())
    return Ingest(stack, _epnml(stack, "units", *files), inputs)


@pytest.fixture(scope="session")
def ingested_pits(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Ingest:
    """The two seeded synthetic Mars GeoTIFFs with drawn pits (projected and geographic)."""
    from tests.fixtures.make_pits_fixtures import make_pits_fixtures

    inputs = tmp_path_factory.mktemp("pits_inputs")
    made = make_pits_fixtures(inputs)
    files = {name: made[name] for name in ("geotiff", "geotiff_geographic")}
    return Ingest(stack, _epnml(stack, "pits", *map(str, files.values())), inputs, files)


@pytest.fixture(scope="session")
def ingested_craters(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Ingest:
    """Mars (135-140 E) and Moon (across 0 E) crater GeoTIFFs, threshold 0.2."""
    from tests.fixtures.make_craters_fixtures import make_craters_fixtures

    inputs = tmp_path_factory.mktemp("craters_inputs")
    made = make_craters_fixtures(inputs)
    files = {name: made[name] for name in ("mars", "moon_0E")}
    result = _epnml(stack, "craters", "--threshold", "0.2", "--model-version", CRATERS_VERSION,
                    *map(str, files.values()))
    return Ingest(stack, result, inputs, files)


@pytest.fixture(scope="session")
def ingested_mounds_ice(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Ingest:
    """Georeferenced mounds DTMs and ice images in one routed ``ingest landforms`` call.

    Routing sends the DTMs to mounds and the 40-60 deg S HiRISE-scale images to pits and
    ice; ``files`` keys are ``mounds_<name>`` and ``ice_<name>``.
    """
    from tests.fixtures.make_ice_fixtures import make_ice_fixtures
    from tests.fixtures.make_mounds_fixtures import make_mounds_fixtures

    inputs = tmp_path_factory.mktemp("mounds_ice_inputs")
    mounds = make_mounds_fixtures(inputs / "mounds")
    ice = make_ice_fixtures(inputs / "ice")
    files = {"mounds_dtm": mounds["dtm"], "mounds_dtm_cross0": mounds["dtm_cross0"],
             "ice_geotiff": ice["geotiff"], "ice_geotiff_cross0": ice["geotiff_cross0"]}
    return Ingest(stack, _epnml(stack, "landforms", *map(str, files.values())), inputs, files)


@pytest.fixture(scope="session")
def ingested_aurora(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Ingest:
    """The seeded simulated EMUS-like FITS images (one per kind) and the PNG chip."""
    from tests.fixtures.make_aurora_fixtures import make_aurora_fixtures

    inputs = tmp_path_factory.mktemp("aurora_inputs")
    made = make_aurora_fixtures(inputs)
    files = {name: path for name, path in made.items()
             if name.startswith("simulated_emus_") and path.parent == inputs}
    return Ingest(stack, _epnml(stack, "aurora", *map(str, files.values())), inputs, files)


@pytest.fixture(scope="session")
def ingested_all(ingested_icme: Ingest, ingested_crossings: Ingest, ingested_units: Ingest,
                 ingested_pits: Ingest, ingested_craters: Ingest,
                 ingested_mounds_ice: Ingest, ingested_aurora: Ingest) -> dict[str, Ingest]:
    """Every pipeline ingested: for the tests that cover every product family."""
    return {"icme": ingested_icme, "crossings": ingested_crossings, "units": ingested_units,
            "pits": ingested_pits, "craters": ingested_craters,
            "mounds_ice": ingested_mounds_ice, "aurora": ingested_aurora}


@pytest.fixture(scope="session")
def tap(stack: Stack) -> object:
    """A pyvo TAP client on the test service (request the ``ingested_*`` a test reads)."""
    pyvo = pytest.importorskip("pyvo")
    return pyvo.dal.TAPService(stack.tap_url)
