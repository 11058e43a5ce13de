"""The one configuration of epnml.

Values come from ``epnml.toml`` (path in ``EPNML_CONFIG``, default ``./epnml.toml``
if it exists) and are overridden by environment variables ``EPNML_<KEY>``.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, fields, replace
from pathlib import Path
from urllib.parse import quote

#: the checkout (src/epnml/config.py -> ../..): default home of sql/, rd/ and ml/.
REPO_ROOT = Path(__file__).resolve().parents[2]


def project_dir(name: str) -> Path:
    """Where the non-code folder ``sql``, ``rd``, ``ml`` (model artefacts) or ``schemas`` is:
    the settings ``sql_dir``, ``rd_dir``, ``models_dir``, ``schemas_dir`` (``epnml.toml`` or
    ``EPNML_SQL_DIR``... for an installed package), by default the checkout's folders."""
    key = {"sql": "sql_dir", "rd": "rd_dir", "ml": "models_dir", "schemas": "schemas_dir"}[name]
    value: Path = getattr(load_settings(), key)
    return value


def models_dir() -> Path:
    """Committed weights (``weights/``) and model cards (``MODEL_CARD_<name>.md``)."""
    return project_dir("ml")


@dataclass(frozen=True)
class Settings:
    #: libpq connection string of the storage database (the DaCHS database); empty = the
    #: first line of ``dsn_file``. Never put a password in epnml.toml: use ``dsn_file``.
    dsn: str = ""
    #: root-only (mode 600) file holding the DSN of the ingest role, written by
    #: ``service/provision.sh stack`` with a generated password (docs/security.md).
    dsn_file: Path = Path("/var/gavo/etc/epnml-dsn-ingest")
    #: where quicklooks and other served files are written: DaCHS serves
    #: ``<rootDir>/web/nv_static`` at ``/static``, so no extra web server is needed.
    data_dir: Path = Path("/var/gavo/web/nv_static/epnml")
    #: the read-only real reference data (never copied into the repository).
    shared_data: Path = REPO_ROOT.parent / "shared" / "data"
    #: the storage migrations (``sql/``), the DaCHS resource descriptors (``rd/``), the
    #: committed weights and model cards (``ml/``) and the generated product schemas
    #: (``schemas/``); an installed package points these at its data files.
    sql_dir: Path = REPO_ROOT / "sql"
    rd_dir: Path = REPO_ROOT / "rd"
    models_dir: Path = REPO_ROOT / "ml"
    schemas_dir: Path = REPO_ROOT / "schemas"
    #: public base URL of the DaCHS server (used in thumbnail_url / access_url).
    server_url: str = "http://localhost:8080"
    #: public URL of ``data_dir``; empty = ``<server_url>/static/epnml``.
    files_url: str = ""
    #: public base URL of the re-inference / DataLink HTTP service (``epnml serve``).
    api_url: str = "http://localhost:8090"
    #: ivoa authority of the registry records.
    authority: str = "epnml.example.org"
    #: contact of the service operators (HAPI ``about``; keep equal to ``contact.email`` of
    #: service/dachs/defaultmeta.txt, the registry records' contact).
    contact: str = "epnml@example.org"
    #: worker processes of the local executor.
    workers: int = 2
    #: bearer token that commits (re-inference writing rows) need; empty = commits refused.
    api_token: str = ""
    #: largest upload (MB) accepted by ``POST /preview/{pipeline}``.
    max_upload_mb: int = 50
    #: UWS jobs allowed in phase QUEUED at once (more: 503).
    max_queued_jobs: int = 20
    #: default lifetime of a UWS job (hours) before the reaper destroys it.
    job_lifetime_h: int = 24
    #: uploads and job results of the HTTP service (never product rows).
    jobs_dir: Path = Path("/var/tmp/epnml-jobs")
    #: 1 = the HTTP service runs queued UWS jobs; 0 = jobs stay QUEUED (paused worker).
    job_worker: int = 1
    #: seconds one preview (and one granule of a preview job) may run; its worker process
    #: is killed at the deadline (HTTP 504).
    preview_timeout_s: int = 120
    #: worker processes running previews at once (each loads the models it needs, about
    #: 0.3-0.6 GB); 0 = one per core this process may use (os.sched_getaffinity).
    preview_workers: int = 0
    #: previews that may wait for a worker; beyond, HTTP 503 with Retry-After at once.
    preview_queue: int = 4
    #: most waiting previews of one pipeline and model version sent to a worker as one
    #: batch (1 = no batching, the default: a worker keeps the models it has loaded, and on
    #: free cores batches only made calls wait behind their batch, see docs/benchmarks.md).
    preview_batch: int = 1
    #: address-space cap (MB, RLIMIT_AS) of a preview worker process; 0 = none.
    preview_memory_mb: int = 4096
    #: how preview workers start: forkserver (default, clean processes) or fork.
    preview_start_method: str = "forkserver"
    #: UWS jobs one client (owner token, else client address) may hold PENDING or QUEUED
    #: (more: HTTP 429).
    max_pending_per_client: int = 10
    #: minutes a job may stay PENDING (never run) before the reaper destroys it.
    pending_lifetime_min: int = 60
    #: log file of ``epnml serve`` (created mode 600; stdout/stderr go there too); empty =
    #: the terminal.
    api_log: str = ""


def files_url(settings: Settings) -> str:
    return settings.files_url or f"{settings.server_url.rstrip('/')}/static/epnml"


def datalink_url(settings: Settings, granule_uid: str) -> str:
    """The DataLink document of one served row (``datalink_url`` column)."""
    return f"{settings.api_url.rstrip('/')}/datalink?ID={quote(granule_uid, safe='')}"


def load_settings(path: Path | None = None) -> Settings:
    """Read the settings file (if any) and apply ``EPNML_*`` environment overrides."""
    settings = Settings()
    config_path = path or Path(os.environ.get("EPNML_CONFIG", "epnml.toml"))
    values: dict[str, object] = {}
    if config_path.is_file():
        with config_path.open("rb") as handle:
            values.update(tomllib.load(handle))
    for field in fields(Settings):
        env = os.environ.get(f"EPNML_{field.name.upper()}")
        if env is not None:
            values[field.name] = env
    unknown = set(values) - {f.name for f in fields(Settings)}
    if unknown:
        raise ValueError(f"{config_path}: unknown settings {sorted(unknown)}")
    typed: dict[str, object] = {}
    for field in fields(Settings):
        if field.name not in values:
            continue
        raw = values[field.name]
        default = getattr(settings, field.name)
        if isinstance(default, Path):
            typed[field.name] = Path(str(raw))
        elif isinstance(default, int):
            try:
                typed[field.name] = int(str(raw))
            except ValueError as exc:
                raise ValueError(f"setting {field.name}: not an integer: {raw!r}") from exc
        else:
            typed[field.name] = str(raw)
    settings = replace(settings, **typed)  # type: ignore[arg-type]
    if not settings.dsn:
        settings = replace(settings, dsn=read_dsn_file(settings.dsn_file))
    return settings


def read_dsn_file(path: Path) -> str:
    """The DSN in a secrets file (first non-comment line); "" when it is absent or unreadable,
    so commands that never touch the database still run (``epnml.db.connect`` says why)."""
    try:
        text = path.read_text()
    except OSError:
        return ""
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            return line
    return ""
