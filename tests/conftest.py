"""Shared fixtures: the real stack (PostgreSQL/pgSphere + DaCHS) and the shared data.

The stack tests run against their own DaCHS instance and database (``epnml_test``
on port 8098), provisioned by the same ``service/provision.sh`` the README uses,
so running the tests never touches the service's rows.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from epnml.config import Settings, load_settings, read_dsn_file

REPO = Path(__file__).resolve().parent.parent
TEST_ROOT = Path(os.environ.get("EPNML_TEST_ROOT", "/var/tmp/epnml-test"))
TEST_DB = os.environ.get("EPNML_TEST_DB", "epnml_test")
TEST_PORT = int(os.environ.get("EPNML_TEST_PORT", "8098"))
TEST_API_PORT = int(os.environ.get("EPNML_TEST_API_PORT", "8099"))
PRODUCT_TABLES = ("events", "crossings", "landforms", "units")


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
STORE_TABLES = ("epnml.events, epnml.crossings, epnml.landforms, epnml.units, "
                "epnml.granule_runs, epnml.runs, epnml.model_versions, epnml.granule_sources, "
                "epnml.granule_versions")


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
                     "epnml.jobs, epnml.inference_log")
    for key in ("EPNML_DSN", "EPNML_DSN_FILE", "EPNML_DATA_DIR", "EPNML_SERVER_URL",
                "EPNML_API_URL", "GAVOSETTINGS"):
        os.environ[key] = env[key]
    yield Stack(f"http://localhost:{TEST_PORT}/tap", f"http://localhost:{TEST_PORT}", env,
                TEST_ROOT / "gavo", owner_dsn)
    subprocess.run(["bash", str(REPO / "service" / "provision.sh"), "stop"], env=env,
                   capture_output=True, cwd=REPO)


@dataclass(frozen=True)
class Ingested:
    stack: Stack
    inputs: Path
    truth: list[tuple[object, object]]
    result: subprocess.CompletedProcess[str]
    #: simulated MESSENGER orbits ingested by the crossings pipeline: attrs of each frame.
    crossings_truth: list[dict[str, object]]
    crossings_result: subprocess.CompletedProcess[str]
    #: a simulated MASCS-like VIS observation ingested by the units pipeline.
    units_inputs: Path
    units_result: subprocess.CompletedProcess[str]
    #: the seeded synthetic Mars GeoTIFFs ingested by the pits pipeline.
    landforms_result: subprocess.CompletedProcess[str]


#: synthetic orbits (orbit number, seed; no shared data needed) for the crossings pipeline.
CROSSINGS_ORBITS = ((900, 31), (901, 32))


@pytest.fixture(scope="session")
def ingested(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Ingested:
    """Simulated solar wind with known ICMEs ingested through the real CLI (plus one bad file)."""
    from epnml.ingest.simulate.solarwind import simulate_solar_wind, write_csv

    inputs = tmp_path_factory.mktemp("icme_inputs")
    frame, truth = simulate_solar_wind("2021-03-01", days=28, seed=7, n_icmes=3)
    write_csv(frame, inputs / "wind_simulated_20210301.csv")
    (inputs / "wind_broken_20210401.csv").write_text("time,bx,by\n2021-04-01 00:00:00,1,2\n")
    result = stack.run(str(Path(sys.prefix) / "bin" / "epnml"), "ingest", "icme",
                       "--keep-going", "--no-progress", "--workers", "1", str(inputs),
                       check=False)
    crossings_truth, crossings_result = _ingest_crossings(stack, tmp_path_factory)
    units_inputs, units_result = _ingest_units(stack, tmp_path_factory)
    landforms_result = _ingest_landforms(stack, tmp_path_factory)
    return Ingested(stack, inputs, list(truth), result, crossings_truth, crossings_result,
                    units_inputs, units_result, landforms_result)


def _ingest_landforms(stack: Stack, tmp_path_factory: pytest.TempPathFactory
                      ) -> subprocess.CompletedProcess[str]:
    """Two seeded synthetic georeferenced Mars GeoTIFFs with drawn pits, via the real CLI."""
    sys.path.insert(0, str(REPO / "tests" / "fixtures"))
    from make_pits_fixtures import make_pits_fixtures

    files = make_pits_fixtures(tmp_path_factory.mktemp("landforms_inputs"))
    tiffs = [str(files[name]) for name in ("geotiff", "geotiff_geographic")]
    return stack.run(str(Path(sys.prefix) / "bin" / "epnml"), "ingest", "pits",
                     "--no-progress", "--workers", "1", *tiffs, check=False)


def _ingest_units(stack: Stack, tmp_path_factory: pytest.TempPathFactory
                  ) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """A simulated MASCS-like grid across 0 deg E (PDS3), through the real CLI (UMAP path)."""
    from epnml.ingest.simulate.units import write_simulated_mascs

    inputs = tmp_path_factory.mktemp("units_inputs")
    write_simulated_mascs(inputs, lon_range=(340.0, 20.0), lat_range=(-30.0, 10.0), seed=2026)
    files = sorted(str(p) for p in inputs.iterdir() if p.is_file())
    result = stack.run(str(Path(sys.prefix) / "bin" / "epnml"), "ingest", "units",
                       "--no-progress", "--workers", "1", *files, check=False)
    return inputs, result


def _ingest_crossings(stack: Stack, tmp_path_factory: pytest.TempPathFactory
                      ) -> tuple[list[dict[str, object]], subprocess.CompletedProcess[str]]:
    """Two simulated (synthetic) MESSENGER orbits as PDS3 products, through the real CLI."""
    from epnml.ingest.simulate.messenger import simulate_orbit, write_pds3

    inputs = tmp_path_factory.mktemp("crossings_inputs")
    truth = []
    for orbit, seed in CROSSINGS_ORBITS:
        frame = simulate_orbit(orbit, seed)  # no shared data given: a synthetic orbit
        write_pds3(frame, inputs)
        truth.append(dict(frame.attrs))
    result = stack.run(str(Path(sys.prefix) / "bin" / "epnml"), "ingest", "crossings",
                       "--no-progress", "--workers", "1", str(inputs), check=False)
    return truth, result


@pytest.fixture(scope="session")
def tap(ingested: Ingested) -> object:
    """A pyvo TAP client on the test service, after every pipeline has ingested."""
    pyvo = pytest.importorskip("pyvo")
    return pyvo.dal.TAPService(ingested.stack.tap_url)
