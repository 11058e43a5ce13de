"""The COPY writer against the real PostgreSQL/pgSphere store."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import psycopg
import pytest
import pyvo

from epnml.config import datalink_url, load_settings
from epnml.ingest.stage import Granule, ModelInfo, StageOutput
from epnml.ingest.writer import write_granule
from epnml.schemas import get_product

pytestmark = pytest.mark.stack

EVENTS = get_product("events")


def _row(uid: str, obs_id: str, version: str, target_class: str = "interplanetary_medium"
         ) -> dict[str, Any]:
    now = datetime(2026, 1, 1, 12, 0, 0)
    return {
        "granule_uid": uid, "granule_gid": "icme", "obs_id": obs_id, "dataproduct_type": "ci",
        "target_name": "solar wind", "target_class": target_class,
        "time_min": 2459000.5, "time_max": 2459001.5, "spatial_frame_type": "none",
        "processing_level": 5, "creation_date": now, "modification_date": now,
        "release_date": now, "service_title": "epnml_events", "ml_model_name": "icme",
        "ml_model_version": version, "ml_weights_sha256": "0" * 64, "ml_run_id": "test",
        "ml_score": 0.9,
        # as every stage's rows: the compliance test reads these rows on the shared stack
        "datalink_url": datalink_url(load_settings(), uid),
    }


def _output(obs_id: str, version: str, uids: list[str], **kw: Any) -> StageOutput:
    granule = Granule(obs_id, (Path(f"/data/{obs_id}.csv"),))
    return StageOutput(granule, pd.DataFrame(), [_row(u, obs_id, version, **kw) for u in uids])


def _state(conn: psycopg.Connection, obs_id: str) -> dict[str, bool]:
    rows = conn.execute("SELECT granule_uid, superseded_at IS NULL FROM epnml.events"
                        " WHERE obs_id = %s", (obs_id,)).fetchall()
    return dict(rows)


def test_replace_supersede_and_rollback(stack: Any) -> None:
    settings = load_settings()
    v1, v2 = ModelInfo("icme", "1", "a" * 64), ModelInfo("icme", "2", "b" * 64)
    with psycopg.connect(settings.dsn, autocommit=True) as conn:
        write_granule(conn, EVENTS, "icme", _output("w_t1", "1", ["u1", "u2"]), v1)
        assert _state(conn, "w_t1") == {"u1": True, "u2": True}
        created = conn.execute("SELECT creation_date FROM epnml.events WHERE granule_uid='u1'"
                               ).fetchone()

        # same model version: its rows are replaced, first creation_date kept
        out = _output("w_t1", "1", ["u1"])
        out.rows[0]["creation_date"] = datetime(2030, 1, 1)
        result = write_granule(conn, EVENTS, "icme", out, v1)
        assert (result.n_rows, result.n_replaced, result.n_superseded) == (1, 2, 0)
        assert _state(conn, "w_t1") == {"u1": True}
        again = conn.execute("SELECT creation_date FROM epnml.events WHERE granule_uid='u1'"
                             ).fetchone()
        assert again == created

        # a new version supersedes, never deletes
        result = write_granule(conn, EVENTS, "icme", _output("w_t1", "2", ["u1v2", "u3v2"]), v2)
        assert result.n_superseded == 1
        assert _state(conn, "w_t1") == {"u1": False, "u1v2": True, "u3v2": True}
        served = pyvo.dal.TAPService(stack.tap_url).search(
            "SELECT granule_uid FROM epnml_events.epn_core WHERE obs_id = 'w_t1'").to_table()
        assert sorted(str(u) for u in served["granule_uid"]) == ["u1v2", "u3v2"]

        # a failing granule (illegal target_class) leaves no rows and supersedes nothing
        bad = _output("w_t1", "3", ["u9"], target_class="UNKNOWN")
        with pytest.raises(psycopg.errors.CheckViolation):
            write_granule(conn, EVENTS, "icme", bad, ModelInfo("icme", "3", "c" * 64))
        assert _state(conn, "w_t1") == {"u1": False, "u1v2": True, "u3v2": True}


def test_rows_must_match_granule(stack: Any) -> None:
    settings = load_settings()
    with psycopg.connect(settings.dsn, autocommit=True) as conn:
        out = _output("w_t2", "1", ["x1"])
        out.rows[0]["obs_id"] = "somewhere_else"
        with pytest.raises(ValueError, match="does not belong"):
            write_granule(conn, EVENTS, "icme", out, ModelInfo("icme", "1", "a" * 64))
        assert _state(conn, "w_t2") == {}


def test_retire_supersedes_records_and_finds_granules_by_file(stack: Any, tmp_path: Path
                                                              ) -> None:
    from epnml.cli import main
    from epnml.ingest.writer import describe_source, granules_of_files, retire_granules

    settings = load_settings()
    v1 = ModelInfo("icme", "1", "a" * 64)
    kept, gone = tmp_path / "w_r_kept.csv", tmp_path / "w_r_gone.csv"
    kept.write_text("kept\n")
    gone.write_text("gone\n")
    with psycopg.connect(settings.dsn, autocommit=True) as conn:
        for path, uids in ((kept, ["r1"]), (gone, ["r2", "r3"])):
            out = _output(path.stem, "1", uids)
            out = StageOutput(Granule(path.stem, (path,)), out.records, out.rows)
            write_granule(conn, EVENTS, "icme", out, v1, source=describe_source(out.granule))
        assert granules_of_files(conn, "icme", [gone]) == ["w_r_gone"]
        with pytest.raises(ValueError, match="needs a reason"):
            retire_granules(conn, EVENTS, "icme", ["w_r_gone"], "  ")

        assert main(["db", "retire", "icme", "--files", str(gone),
                     "--reason", "withdrawn input"]) == 0
        assert _state(conn, "w_r_gone") == {"r2": False, "r3": False}  # kept, superseded
        assert _state(conn, "w_r_kept") == {"r1": True}
        recorded = conn.execute("SELECT obs_id, reason, n_rows FROM epnml.retirements"
                                " WHERE obs_id LIKE 'w_r_%'").fetchall()
        assert recorded == [("w_r_gone", "withdrawn input", 2)]
        # a second retirement finds nothing current and records nothing
        assert retire_granules(conn, EVENTS, "icme", ["w_r_gone"], "again") == {"w_r_gone": 0}
        assert conn.execute("SELECT count(*) FROM epnml.retirements WHERE obs_id = 'w_r_gone'"
                            ).fetchone() == (1,)
        served = pyvo.dal.TAPService(stack.tap_url).search(
            "SELECT obs_id FROM epnml_events.epn_core WHERE obs_id LIKE 'w_r_%'").to_table()
        assert [str(o) for o in served["obs_id"]] == ["w_r_kept"]
