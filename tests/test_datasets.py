"""Training datasets (issue #16): content hash, quality figures, manifests, registration."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from epnml.config import load_settings
from epnml.datasets.build import build_icme_2
from epnml.datasets.manifest import (
    Manifest,
    ManifestError,
    Sample,
    Source,
    hash_near_pairs,
    quality_report,
    read_manifest,
    simulator_source,
    time_near_pairs,
)

COMMITTED = load_settings().models_dir / "datasets"


def tiny() -> Manifest:
    """Five samples in three splits from two files; a.jpg is in train AND test."""
    sources = [Source("img/a.jpg", "archive", "a" * 64, reference="doi:10.1/x"),
               Source("img/b.jpg", "archive", "b" * 64), simulator_source("sim.mod", 7)]
    samples = [
        Sample("a#0", "train", "img/a.jpg", "pit", "annotator A", obs_id="OBS_1"),
        Sample("a#1", "test", "img/a.jpg", "pit", "annotator A", obs_id="OBS_1"),
        Sample("b#0", "train", "img/b.jpg", "crater", "annotator A", obs_id="OBS_2",
               time_min="2020-01-01T00:00:00", time_max="2020-01-01T06:00:00"),
        Sample("b#1", "validation", "img/b.jpg", "pit", "annotator A", obs_id="OBS_2",
               time_min="2020-01-01T12:00:00", time_max="2020-01-01T13:00:00"),
        Sample("s#0", "train", "sim.mod#seed=7", "pit", "simulator sim.mod"),
    ]
    return Manifest("pits", "9.9.9", "t", "d", False, sources, samples)


def test_content_hash_changes_with_one_label() -> None:
    m = tiny()
    other = tiny()
    other.samples[3] = replace(other.samples[3], label="crater")
    assert m.content_sha256 == tiny().content_sha256  # deterministic
    assert m.content_sha256 != other.content_sha256
    assert m.dataset_id != other.dataset_id
    # order of the records does not matter, a source checksum does
    shuffled = tiny()
    shuffled.samples.reverse()
    shuffled.sources.reverse()
    assert shuffled.content_sha256 == m.content_sha256
    resummed = tiny()
    resummed.sources[1] = replace(resummed.sources[1], sha256="c" * 64)
    assert resummed.content_sha256 != m.content_sha256


def test_quality_figures_exact_on_tiny_fixture() -> None:
    m = tiny()
    by_file = {s.sample_id: s.source_file for s in m.samples}
    hashes = {"a#0": 0b1111, "a#1": 0b1111, "b#0": 0b0000, "b#1": 0b0111, "s#0": 0xFF00}
    q = quality_report(
        m.samples, duplicate_keys=by_file, duplicate_method="same file",
        near_pairs=hash_near_pairs(m.samples, hashes, 3), near_method="dhash <= 3 bits",
        label_agreement=None)
    assert q["n_samples"] == {"train": 3, "validation": 1, "test": 1}
    assert q["class_balance"] == {"train": {"crater": 1, "pit": 2}, "validation": {"pit": 1},
                                  "test": {"pit": 1}}
    dup = q["duplicates_across_splits"]
    assert (dup["n_groups"], dup["n_samples"]) == (2, 4)
    assert dup["groups"] == [
        {"key": "img/a.jpg", "samples": ["a#0", "a#1"], "splits": ["train", "test"]},
        {"key": "img/b.jpg", "samples": ["b#0", "b#1"], "splits": ["train", "validation"]}]
    # 0 bits train/test, 1 bit train/validation, 1 bit test/validation, 3 bits
    # train/validation; a#1~b#0 differ in 4 bits; same-split pairs never count
    near = q["near_duplicates_across_splits"]
    assert near["pairs"] == [["a#0", "a#1"], ["a#0", "b#1"], ["a#1", "b#1"], ["b#0", "b#1"]]
    assert q["label_agreement"] == {"available": False, "reason": "one label source only"}


def test_time_near_pairs_gap_and_same_event() -> None:
    m = tiny()
    assert time_near_pairs(m.samples, 6 * 3600.0, {}) == [("b#0", "b#1")]
    assert time_near_pairs(m.samples, 5 * 3600.0, {}) == []
    assert time_near_pairs(m.samples, 6 * 3600.0, {"b#0": "E", "b#1": "E"}) == []


def test_manifest_round_trip_and_tamper(tmp_path: Path) -> None:
    m = tiny()
    path = tmp_path / "pits-9.9.9.json"
    path.write_text(m.to_json())
    back = read_manifest(path)
    assert back.dataset_id == m.dataset_id and back.samples == sorted(
        m.samples, key=lambda s: s.sample_id)
    doc = json.loads(path.read_text())
    doc["samples"][0]["label"] = "crater"
    path.write_text(json.dumps(doc))
    with pytest.raises(ManifestError) as err:
        read_manifest(path)
    assert str(err.value) == ("pits-9.9.9.json: content_sha256 does not match the records "
                              "(edited by hand? rebuild with `epnml datasets build`)")


def test_manifest_refuses_unknown_source() -> None:
    m = tiny()
    m.samples.append(Sample("x", "train", "img/zzz.jpg", "pit", "A"))
    with pytest.raises(ManifestError, match=r"^m.json: sample source img/zzz.jpg is not among"):
        m.check("m.json")


def _icme_fixture(root: Path, nguyen_end: str = "2001/03/03 00:00") -> None:
    """Fake OMNI2 files (bytes only: the builder hashes them) and two tiny catalogues."""
    omni = root / "solarwind" / "omni2_hourly"
    omni.mkdir(parents=True)
    for y in range(1998, 2019):
        (omni / f"omni2_{y}.dat").write_text(f"{y}\n")
    cat = root / "catalogues"
    cat.mkdir()
    head = "icmecat_id,sc_insitu,icme_start_time,mo_start_time,mo_end_time\n"
    (cat / "helio4cast_icmecat_v23.csv").write_text(
        head + "ICME_Wind_A,Wind,2001-03-01T00:00Z,2001-03-01T06:00Z,2001-03-02T00:00Z\n"
        "ICME_Wind_B,Wind,2001-12-31T12:00Z,2001-12-31T18:00Z,2002-01-01T12:00Z\n"
        "ICME_Wind_C,Wind,2000-06-01T00:00Z,2000-06-01T03:00Z,2000-06-01T10:00Z\n"
        "ICME_STA_D,STEREO-A,2001-03-01T00:00Z,2001-03-01T06:00Z,2001-03-02T00:00Z\n")
    (cat / "nguyen2019_wind_icmes.csv").write_text(
        "begin,end,origin\n2001/03/01 02:00," + nguyen_end + ",x\n"
        "2005/01/01 00:00,2005/01/02 00:00,x\n")


def test_icme_build_on_fixture(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import epnml.datasets.build as b

    real = b.card("icme", "2.0.0")
    monkeypatch.setattr(b, "card", lambda *a: {**real, "data": {"n_icmecat_wind_events": 3}})
    _icme_fixture(tmp_path)
    m = build_icme_2(tmp_path)
    ids = {s.sample_id: s.split for s in m.samples}
    # B crosses 2001 (train) -> 2002 (validation): two samples, one duplicate group
    assert ids == {"ICME_Wind_A": "train", "ICME_Wind_B@2001": "train",
                   "ICME_Wind_B@2002": "validation", "ICME_Wind_C": "test"}
    q = m.quality
    assert q["duplicates_across_splits"]["groups"] == [
        {"key": "ICME_Wind_B", "samples": ["ICME_Wind_B@2001", "ICME_Wind_B@2002"],
         "splits": ["train", "validation"]}]
    assert q["class_balance"] == {"train": {"ICME": 2}, "validation": {"ICME": 1},
                                  "test": {"ICME": 1}}
    agree = q["label_agreement"]
    assert (agree["icmecat_events"], agree["nguyen_events"]) == (3, 2)
    # scored per year as the trainer scores it: B misses in 2001 and in 2002
    assert (agree["icmecat_found_in_nguyen"], agree["icmecat_not_in_nguyen"],
            agree["nguyen_not_in_icmecat"]) == (1, 3, 1)
    # hours as the trainer labels them (the hour starting at the end time included):
    # A 2001-03-01 00h..03-02 00h (25) + B 2001-12-31 12h..23h (12) in train
    assert q["class_balance_hours"]["train"]["ICME"] == 37
    assert q["class_balance_hours"]["validation"]["ICME"] == 13
    assert len(m.sources) == 23 and m.datacite["types"]["resourceTypeGeneral"] == "Dataset"
    # one changed source byte is another dataset version
    (tmp_path / "solarwind/omni2_hourly/omni2_2010.dat").write_text("changed\n")
    assert build_icme_2(tmp_path).dataset_id != m.dataset_id


def test_committed_manifests_are_consistent() -> None:
    paths = sorted(COMMITTED.glob("*.json"))
    assert [p.stem for p in paths] == ["aurora-1.0.0", "craters-2.0.0", "craters-2.1.0",
                                       "craters-2.2.0", "craters-2.3.0", "crossings-1.0.0",
                                       "crossings-baseline-1.0.0",
                                       "ice-1.0.0", "icme-1.0.0", "icme-2.0.0", "icme-2.1.0",
                                       "icme-2.2.0",
                                       "meteors-1.0.0", "minerals-1.0.0", "mounds-1.0.0",
                                       "pits-1.0.0", "pits-2.0.0"]
    for p in paths:
        m = read_manifest(p)
        assert m.datacite["publicationYear"] >= 2026
        assert m.datacite["titles"] == [{"title": m.title}]
    pits = read_manifest(COMMITTED / "pits-1.0.0.json")
    # the card's per-split box counts (ml/weights/pits-1.0.0.json)
    assert pits.counts() == {"train": 293, "validation": 63, "test": 71}
    assert pits.quality["duplicates_across_splits"]["n_groups"] == 0


def test_rebuilt_manifests_match_committed(shared_data: Path, tmp_path: Path) -> None:
    from epnml.datasets.build import build_all

    written = build_all(shared_data, tmp_path, ["icme-2.0.0", "pits-1.0.0"])
    assert [p.name for p in written] == ["icme-2.0.0.json", "pits-1.0.0.json"]
    for p in written:
        assert read_manifest(p).dataset_id == read_manifest(COMMITTED / p.name).dataset_id


@pytest.fixture(scope="module")
def dataset_dsn() -> str:
    from tests.conftest import migrated_database

    return migrated_database("datasets")


def test_register_is_idempotent(dataset_dsn: str, tmp_path: Path) -> None:
    import psycopg

    from epnml.datasets.register import register_all

    m = tiny()
    path = tmp_path / "pits-9.9.9.json"
    path.write_text(m.to_json())
    with psycopg.connect(dataset_dsn, autocommit=True) as conn:
        conn.execute("TRUNCATE epnml.dataset_samples, epnml.dataset_sources, "
                     "epnml.dataset_versions")
        first = register_all(conn, [path])
        before = conn.execute("SELECT registered_at FROM epnml.dataset_versions").fetchall()
        second = register_all(conn, [path])
        after = conn.execute("SELECT registered_at FROM epnml.dataset_versions").fetchall()
        counts = conn.execute(
            "SELECT (SELECT count(*) FROM epnml.dataset_versions), "
            "(SELECT count(*) FROM epnml.dataset_sources), "
            "(SELECT count(*) FROM epnml.dataset_samples)").fetchone()
        row = conn.execute("SELECT n_train, n_validation, n_test, seed FROM "
                           "epnml.dataset_versions JOIN epnml.dataset_sources USING "
                           "(dataset_id) WHERE origin = 'simulator'").fetchone()
        # a changed label is a second dataset version; the first stays as it was
        changed = tiny()
        changed.samples[0] = replace(changed.samples[0], label="crater")
        path2 = tmp_path / "pits-9.9.9b.json"
        path2.write_text(changed.to_json())
        third = register_all(conn, [path2])
        ids = [r[0] for r in conn.execute(
            "SELECT dataset_id FROM epnml.dataset_versions ORDER BY registered_at")]
    assert [(r.dataset_id, r.added) for r in first] == [(m.dataset_id, True)]
    assert [(r.dataset_id, r.added) for r in second] == [(m.dataset_id, False)]
    assert before == after
    assert counts == (1, 3, 5)
    assert row == (3, 1, 1, 7)
    assert third[0].added and ids == [m.dataset_id, changed.dataset_id]


#: the new manifests (issue #16 follow-up): model card figures they must reproduce.
NEW = {
    # meteors: every valid Armagh record, one split; clusters as the card counts them
    "meteors-1.0.0": ({"train": 11770, "validation": 0, "test": 0},
                      {"cluster 0: early-peaked": 829, "cluster 1: symmetric": 3497,
                       "cluster 2: late-peaked": 4472, "cluster 3: flaring": 1335,
                       "cluster 4: late-peaked": 1637}),
    # minerals: the 148 labelled RELAB + SLab spectra of the final fit
    "minerals-1.0.0": ({"train": 148, "validation": 0, "test": 0}, None),
    # aurora: 680 / 120 simulated images of seed 2026, 200 of seed 3026
    "aurora-1.0.0": ({"train": 680, "validation": 120, "test": 200}, None),
}


def test_new_manifests_exact_counts() -> None:
    from epnml.datasets.manifest import NO_TRAINING_SET

    for key, (counts, classes) in NEW.items():
        m = read_manifest(COMMITTED / f"{key}.json")
        assert m.counts() == counts, key
        if classes is not None:
            assert m.quality["class_balance"] == {"train": classes}
    meteors = read_manifest(COMMITTED / "meteors-1.0.0.json")
    assert [(s.source_file, s.origin, s.seed) for s in meteors.sources] == \
        [("meteors/armagh_meteors_2011_2015.csv.gz", "archive", None)]
    assert {s.label_source for s in meteors.samples} == {"k-means clustering (seed 2015)"}
    assert not meteors.simulated and "no licence" in meteors.description
    aurora = read_manifest(COMMITTED / "aurora-1.0.0.json")
    assert aurora.simulated
    assert [(s.source_file, s.seed) for s in aurora.sources] == [
        ("epnml.ingest.simulate.aurora#seed=2026", 2026),
        ("epnml.ingest.simulate.aurora#seed=3026", 3026)]
    # the card's held-out images per kind (ml/weights/aurora-1.0.0.json, FITS path)
    assert aurora.quality["class_balance"]["test"] == \
        {"diffuse": 48, "discrete": 46, "none": 56, "sinuous": 50}
    minerals = read_manifest(COMMITTED / "minerals-1.0.0.json")
    assert len(minerals.sources) == 148
    assert {s.label_source for s in minerals.samples} == \
        {"RELAB sample abundances", "SLab mixture composition"}
    # units trains nothing: no manifest, and what its provenance says instead
    assert not (COMMITTED / "units-1.0.0.json").exists()
    assert NO_TRAINING_SET["units"].startswith("no training set: ")


def test_rebuilt_unsupervised_and_lab_manifests_match(shared_data: Path,
                                                      tmp_path: Path) -> None:
    from epnml.datasets.build import build_all

    written = build_all(shared_data, tmp_path, ["meteors-1.0.0", "minerals-1.0.0"])
    assert [p.name for p in written] == ["meteors-1.0.0.json", "minerals-1.0.0.json"]
    for p in written:
        assert read_manifest(p).dataset_id == read_manifest(COMMITTED / p.name).dataset_id


def test_new_manifests_register_exactly(dataset_dsn: str) -> None:
    import psycopg

    from epnml.datasets.register import register_all

    paths = [COMMITTED / f"{key}.json" for key in NEW]
    with psycopg.connect(dataset_dsn, autocommit=True) as conn:
        conn.execute("TRUNCATE epnml.dataset_samples, epnml.dataset_sources, "
                     "epnml.dataset_versions")
        done = register_all(conn, paths)
        rows = conn.execute(
            "SELECT v.model_name, v.n_train, v.n_validation, v.n_test,"
            " (SELECT count(*) FROM epnml.dataset_samples s WHERE s.dataset_id = v.dataset_id)"
            " FROM epnml.dataset_versions v ORDER BY v.model_name").fetchall()
    assert [r.added for r in done] == [True, True, True]
    assert rows == [("aurora", 680, 120, 200, 1000), ("meteors", 11770, 0, 0, 11770),
                    ("minerals", 148, 0, 0, 148)]
