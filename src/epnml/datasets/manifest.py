"""Dataset versions as records: samples, sources, content hash, quality report, DataCite.

A manifest (``ml/datasets/<model>-<version>.json``) holds identifiers and labels only, never
data values: it is built once from the shared data and the trainers' split code
(:mod:`epnml.datasets.build`) and committed, so a machine without the shared data still
registers and serves it (:mod:`epnml.datasets.register`).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

FORMAT = "epnml-dataset-manifest/1"
SPLITS = ("train", "validation", "test")
ORIGINS = ("catalogue", "archive", "simulator")
PUBLISHER = "epnml (Europlanet machine-learning EPN-TAP services)"
RIGHTS = {
    "cc-by-4.0": ("Creative Commons Attribution 4.0 International",
                  "https://creativecommons.org/licenses/by/4.0/legalcode"),
}
#: models that train nothing, so have no dataset version: what their provenance says instead.
NO_TRAINING_SET = {
    "units": "no training set: the units are fitted without labels on each granule's own "
             "spectra at ingest (the model is its configuration); the abundance columns come "
             "from the minerals model, whose training set is registered",
}
_NAME = re.compile(r"^[a-z][a-z0-9-]*$")
_VERSION = re.compile(r"^[0-9A-Za-z.+-]+$")
#: a time stored in a manifest: ISO 8601 UTC to the second, no zone suffix (the tables' type).
_TIME = "%Y-%m-%dT%H:%M:%S"


class ManifestError(ValueError):
    """A manifest that cannot be registered (named file, one-line reason)."""


@dataclass(frozen=True)
class Source:
    """A file the samples come from (path relative to the shared-data root) or a simulator
    run (``<module>#seed=<n>``, ``sha256`` None, ``seed`` set)."""

    source_file: str
    origin: str
    sha256: str | None = None
    seed: int | None = None
    reference: str | None = None

    def __post_init__(self) -> None:
        if self.origin not in ORIGINS:
            raise ValueError(f"source {self.source_file}: origin {self.origin!r} is not one of "
                             f"{', '.join(ORIGINS)}")
        if (self.sha256 is None) != (self.origin == "simulator"):
            raise ValueError(f"source {self.source_file}: a file has a sha256, a simulator "
                             "run has none")
        if self.origin == "simulator" and self.seed is None:
            raise ValueError(f"source {self.source_file}: a simulator run needs its seed")


@dataclass(frozen=True)
class Sample:
    """One training, validation or test sample: where it comes from and who labelled it."""

    sample_id: str
    split: str
    source_file: str
    label: str
    label_source: str
    obs_id: str | None = None
    time_min: str | None = None
    time_max: str | None = None

    def __post_init__(self) -> None:
        if self.split not in SPLITS:
            raise ValueError(f"sample {self.sample_id}: split {self.split!r} is not one of "
                             f"{', '.join(SPLITS)}")


def simulator_source(module: str, seed: int, reference: str | None = None) -> Source:
    return Source(f"{module}#seed={seed}", "simulator", None, seed, reference)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def iso(t: Any) -> str:
    """A pandas/datetime timestamp as the manifests store it (UTC, seconds)."""
    if isinstance(t, str):
        return t
    return datetime.fromisoformat(str(t)).strftime(_TIME)


def content_sha256(samples: Iterable[Sample], sources: Iterable[Source]) -> str:
    """SHA-256 over the sample records sorted by id and the sources sorted by name (their
    checksums and seeds included): one changed label, split or file is another dataset."""
    body = {"samples": sorted((asdict(s) for s in samples), key=lambda r: r["sample_id"]),
            "sources": sorted((asdict(s) for s in sources), key=lambda r: r["source_file"])}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()


# ----------------------------------------------------------------------------- quality
def class_balance(samples: Sequence[Sample]) -> dict[str, dict[str, int]]:
    """Samples per label in each split (splits without samples left out)."""
    out: dict[str, dict[str, int]] = {}
    for split in SPLITS:
        counts = Counter(s.label for s in samples if s.split == split)
        if counts:
            out[split] = dict(sorted(counts.items()))
    return out


def cross_split_groups(samples: Sequence[Sample], keys: Mapping[str, str]
                       ) -> list[dict[str, Any]]:
    """Groups of samples sharing a key (same file content, same catalogue event...) that
    fall in more than one split: the leaks a per-sample split can hide."""
    split_of = {s.sample_id: s.split for s in samples}
    groups: dict[str, list[str]] = defaultdict(list)
    for sid, key in keys.items():
        if sid in split_of:
            groups[key].append(sid)
    out = []
    for key, ids in sorted(groups.items()):
        splits = sorted({split_of[i] for i in ids}, key=SPLITS.index)
        if len(splits) > 1:
            out.append({"key": key, "samples": sorted(ids), "splits": splits})
    return out


def hash_near_pairs(samples: Sequence[Sample], hashes: Mapping[str, int], max_bits: int
                    ) -> list[tuple[str, str]]:
    """Pairs of samples of different splits whose 64-bit perceptual hashes differ in at
    most ``max_bits`` bits."""
    split_of = {s.sample_id: s.split for s in samples}
    ids = sorted(i for i in hashes if i in split_of)
    return [(a, b) for k, a in enumerate(ids) for b in ids[k + 1:]
            if split_of[a] != split_of[b] and bin(hashes[a] ^ hashes[b]).count("1") <= max_bits]


def time_near_pairs(samples: Sequence[Sample], gap_s: float, same: Mapping[str, str]
                    ) -> list[tuple[str, str]]:
    """Pairs of samples of different splits (and different ``same`` keys: those are
    duplicates) whose time ranges overlap or lie within ``gap_s`` seconds of each other."""
    timed = [s for s in samples if s.time_min and s.time_max]
    t = {s.sample_id: (datetime.fromisoformat(s.time_min or ""),
                       datetime.fromisoformat(s.time_max or "")) for s in timed}
    pairs: set[tuple[str, str]] = set()
    for k, a in enumerate(timed):
        a0, a1 = t[a.sample_id]
        for b in timed[k + 1:]:
            if a.split == b.split:
                continue
            key = same.get(a.sample_id)
            if key is not None and key == same.get(b.sample_id):
                continue
            b0, b1 = t[b.sample_id]
            if max((b0 - a1).total_seconds(), (a0 - b1).total_seconds()) <= gap_s:
                x, y = sorted((a.sample_id, b.sample_id))
                pairs.add((x, y))
    return sorted(pairs)


def quality_report(samples: Sequence[Sample], *, duplicate_keys: Mapping[str, str],
                   duplicate_method: str, near_pairs: Sequence[tuple[str, str]],
                   near_method: str, label_agreement: Mapping[str, Any] | None,
                   extra: Mapping[str, Any] | None = None, max_listed: int = 20
                   ) -> dict[str, Any]:
    """Class balance per split, duplicates and near-duplicates across splits, label
    agreement between two annotators (or why there is none)."""
    dups = cross_split_groups(samples, duplicate_keys)
    near = sorted(set(near_pairs))
    report: dict[str, Any] = {
        "n_samples": {split: sum(s.split == split for s in samples) for split in SPLITS},
        "class_balance": class_balance(samples),
        "duplicates_across_splits": {
            "method": duplicate_method, "n_groups": len(dups),
            "n_samples": sum(len(g["samples"]) for g in dups), "groups": dups[:max_listed]},
        "near_duplicates_across_splits": {
            "method": near_method, "n_pairs": len(near),
            "pairs": [list(p) for p in near[:max_listed]]},
        "label_agreement": dict(label_agreement) if label_agreement is not None else {
            "available": False, "reason": "one label source only"},
    }
    if extra:
        report.update(extra)
    return report


# ----------------------------------------------------------------------------- DataCite
def datacite(*, model_name: str, model_version: str, title: str, description: str,
             year: int, sources: Sequence[Source], creators: Sequence[tuple[str, str]],
             rights: str, simulated: bool, subjects: Sequence[str] = ()) -> dict[str, Any]:
    """DataCite 4.x metadata (the JSON of the DataCite REST API's ``attributes``), ready
    for a DOI: the identifier is left for the registration agency to fill."""
    rights_name, rights_uri = RIGHTS[rights]
    related = []
    for src in sources:
        ref = src.reference or ""
        if ref.startswith("doi:"):
            related.append({"relatedIdentifier": ref[4:], "relatedIdentifierType": "DOI",
                            "relationType": "IsDerivedFrom"})
        elif ref.startswith(("http://", "https://")):
            related.append({"relatedIdentifier": ref, "relatedIdentifierType": "URL",
                            "relationType": "IsDerivedFrom"})
    uniq = {(r["relatedIdentifier"], r["relatedIdentifierType"]): r for r in related}
    return {
        "schemaVersion": "http://datacite.org/schema/kernel-4",
        "identifiers": [],
        "creators": [{"name": name, "nameType": kind} for name, kind in creators],
        "titles": [{"title": title}],
        "publisher": PUBLISHER,
        "publicationYear": year,
        "types": {"resourceTypeGeneral": "Dataset",
                  "resourceType": "Machine-learning training dataset"
                  + (" (simulated)" if simulated else "")},
        "subjects": [{"subject": s} for s in subjects],
        "descriptions": [{"description": description, "descriptionType": "Abstract"}],
        "rightsList": [{"rights": rights_name, "rightsUri": rights_uri,
                        "rightsIdentifier": rights, "rightsIdentifierScheme": "SPDX"}],
        "relatedIdentifiers": sorted(uniq.values(), key=lambda r: r["relatedIdentifier"]),
        "version": f"{model_name}-{model_version}",
        "formats": ["application/json"],
    }


# ----------------------------------------------------------------------------- manifests
@dataclass
class Manifest:
    """One dataset version of one model version, as committed under ``ml/datasets/``."""

    model_name: str
    model_version: str
    title: str
    description: str
    simulated: bool
    sources: list[Source]
    samples: list[Sample]
    quality: dict[str, Any] = field(default_factory=dict)
    datacite: dict[str, Any] = field(default_factory=dict)

    @property
    def content_sha256(self) -> str:
        return content_sha256(self.samples, self.sources)

    @property
    def dataset_id(self) -> str:
        return f"{self.model_name}-{self.model_version}@{self.content_sha256[:12]}"

    def counts(self) -> dict[str, int]:
        return {split: sum(s.split == split for s in self.samples) for split in SPLITS}

    def check(self, name: str) -> None:
        """Referential integrity before anything is written (one-line reasons)."""
        if not _NAME.match(self.model_name) or not _VERSION.match(self.model_version):
            raise ManifestError(f"{name}: bad model name or version "
                                f"{self.model_name!r} {self.model_version!r}")
        files = [s.source_file for s in self.sources]
        if len(set(files)) != len(files):
            raise ManifestError(f"{name}: a source file is listed twice")
        ids = [s.sample_id for s in self.samples]
        if len(set(ids)) != len(ids):
            dup = next(i for i, c in Counter(ids).items() if c > 1)
            raise ManifestError(f"{name}: sample {dup} is listed twice")
        known = set(files)
        missing = sorted({s.source_file for s in self.samples} - known)
        if missing:
            raise ManifestError(f"{name}: sample source {missing[0]} is not among the sources")
        if not self.samples:
            raise ManifestError(f"{name}: no samples")

    def to_json(self) -> str:
        """One record per line (small diffs when a dataset changes)."""
        head = {"format": FORMAT, "dataset_id": self.dataset_id,
                "model_name": self.model_name, "model_version": self.model_version,
                "content_sha256": self.content_sha256, "title": self.title,
                "description": self.description, "simulated": self.simulated,
                "n": self.counts(), "quality": self.quality, "datacite": self.datacite}
        lines = ["{"]
        for k, v in head.items():
            lines.append(f" {json.dumps(k)}: {json.dumps(v, sort_keys=True)},")
        for key, records in (("sources", sorted(self.sources, key=lambda s: s.source_file)),
                             ("samples", sorted(self.samples, key=lambda s: s.sample_id))):
            lines.append(f" {json.dumps(key)}: [")
            body = [json.dumps(asdict(r), sort_keys=True) for r in records]
            lines.append(",\n".join(f"  {b}" for b in body))
            lines.append(" ]" + ("," if key == "sources" else ""))
        lines.append("}")
        return "\n".join(lines) + "\n"


def read_manifest(path: Path) -> Manifest:
    """A committed manifest, its content hash and dataset id checked against its records."""
    try:
        doc = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestError(f"{path.name}: not a readable JSON manifest ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ManifestError(f"{path.name}: not an {FORMAT} document")
    try:
        m = Manifest(
            model_name=str(doc["model_name"]), model_version=str(doc["model_version"]),
            title=str(doc["title"]), description=str(doc["description"]),
            simulated=bool(doc["simulated"]),
            sources=[Source(**r) for r in doc["sources"]],
            samples=[Sample(**r) for r in doc["samples"]],
            quality=dict(doc.get("quality") or {}), datacite=dict(doc.get("datacite") or {}))
    except (KeyError, TypeError, ValueError) as exc:
        raise ManifestError(f"{path.name}: bad record ({exc})") from None
    m.check(path.name)
    if m.content_sha256 != doc.get("content_sha256"):
        raise ManifestError(f"{path.name}: content_sha256 does not match the records "
                            "(edited by hand? rebuild with `epnml datasets build`)")
    if m.dataset_id != doc.get("dataset_id"):
        raise ManifestError(f"{path.name}: dataset_id does not match the content hash")
    return m
