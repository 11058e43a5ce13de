"""Load committed manifests into epnml.dataset_versions / dataset_sources / dataset_samples.

Idempotent and append-only: a dataset_id already registered is left exactly as it is (its
rows are never updated); a manifest whose content changed has another content hash, so
another dataset_id, and is added beside the old one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg.types.json import Jsonb

from .manifest import Manifest, ManifestError, read_manifest


@dataclass(frozen=True)
class Registered:
    dataset_id: str
    added: bool  # False: it was registered already (nothing written)
    n_samples: int


def manifest_files(directory: Path) -> list[Path]:
    files = sorted(directory.glob("*.json"))
    if not files:
        raise ManifestError(f"no dataset manifests in {directory.name}/")
    return files


def register_manifest(conn: psycopg.Connection, m: Manifest) -> Registered:
    """Insert one dataset version with its sources and samples, in one transaction."""
    n = m.counts()
    dataset_id = m.dataset_id  # a hash over every record: computed once, not per row
    with conn.transaction():
        cur = conn.execute(
            "INSERT INTO epnml.dataset_versions (dataset_id, model_name, model_version, "
            "content_sha256, title, description, n_train, n_validation, n_test, quality, "
            "datacite) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT DO NOTHING RETURNING dataset_id",
            (dataset_id, m.model_name, m.model_version, m.content_sha256, m.title,
             m.description, n["train"], n["validation"], n["test"], Jsonb(m.quality),
             Jsonb(m.datacite)))
        if cur.fetchone() is None:
            return Registered(dataset_id, False, len(m.samples))
        with conn.cursor().copy(
                "COPY epnml.dataset_sources (dataset_id, source_file, sha256, origin, seed, "
                "reference) FROM STDIN") as copy:
            for s in m.sources:
                copy.write_row((dataset_id, s.source_file, s.sha256, s.origin, s.seed,
                                s.reference))
        with conn.cursor().copy(
                "COPY epnml.dataset_samples (dataset_id, sample_id, split, source_file, obs_id, "
                "time_min, time_max, label, label_source) FROM STDIN") as copy:
            for r in m.samples:
                copy.write_row((dataset_id, r.sample_id, r.split, r.source_file, r.obs_id,
                                r.time_min, r.time_max, r.label, r.label_source))
    return Registered(dataset_id, True, len(m.samples))


def register_all(conn: psycopg.Connection, paths: Sequence[Path]) -> list[Registered]:
    """Every manifest is read and checked before the first is written."""
    manifests = [read_manifest(p) for p in paths]
    return [register_manifest(conn, m) for m in manifests]
