-- Database roles (issue #11, docs/security.md). Run, like every migration, by the OWNER role,
-- which owns schema epnml and every object in it. The INGEST role (epnml ingest, epnml serve)
-- reads and writes rows but owns nothing and can drop, truncate or alter nothing. DaCHS reads
-- through gavoadmin's epn_core views (SELECT WITH GRANT OPTION, granted in 0002/0005/0007);
-- its query roles (gavo, untrusted) get nothing here: the views run with their owner's rights.
-- The ingest role's name is the database setting epnml.ingest_role, which
-- service/provision.sh sets (ALTER DATABASE ... SET epnml.ingest_role) before migrating.

REVOKE ALL ON SCHEMA epnml FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA epnml FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA epnml FROM PUBLIC;

-- Superseded rows are the history of every granule: no role deletes them (the owner would
-- have to disable this trigger on purpose). TRUNCATE fires no row trigger: only the owner may.
CREATE FUNCTION epnml.keep_superseded_rows() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.superseded_at IS NOT NULL THEN
        RAISE EXCEPTION 'epnml.%: superseded rows are never deleted (granule_uid %)',
            TG_TABLE_NAME, OLD.granule_uid USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN OLD;
END $$;
REVOKE ALL ON FUNCTION epnml.keep_superseded_rows() FROM PUBLIC;
CREATE TRIGGER events_keep_superseded BEFORE DELETE ON epnml.events
    FOR EACH ROW EXECUTE FUNCTION epnml.keep_superseded_rows();
CREATE TRIGGER crossings_keep_superseded BEFORE DELETE ON epnml.crossings
    FOR EACH ROW EXECUTE FUNCTION epnml.keep_superseded_rows();
CREATE TRIGGER landforms_keep_superseded BEFORE DELETE ON epnml.landforms
    FOR EACH ROW EXECUTE FUNCTION epnml.keep_superseded_rows();
CREATE TRIGGER units_keep_superseded BEFORE DELETE ON epnml.units
    FOR EACH ROW EXECUTE FUNCTION epnml.keep_superseded_rows();

DO $$
DECLARE
    ingest text := current_setting('epnml.ingest_role', true);
BEGIN
    IF coalesce(ingest, '') = '' THEN
        -- a bare database (a unit test's own): only the owner exists, nothing to grant
        RAISE NOTICE 'database setting epnml.ingest_role is not set: no ingest role grants'
            ' (service/provision.sh stack sets it and creates the role)';
        RETURN;
    END IF;
    EXECUTE format('GRANT USAGE ON SCHEMA epnml TO %I', ingest);
    -- Product rows: written (COPY), superseded (UPDATE). DELETE only because the writer
    -- replaces a model version's CURRENT rows re-computed from the same source; the
    -- trigger above refuses deleting superseded rows.
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON epnml.events, epnml.crossings,'
                   ' epnml.landforms, epnml.units TO %I', ingest);
    -- Bookkeeping: runs and their granules, the model registry.
    EXECUTE format('GRANT SELECT, INSERT, UPDATE ON epnml.model_versions, epnml.runs,'
                   ' epnml.granule_runs TO %I', ingest);
    -- UWS jobs of the HTTP service: DELETE is the UWS destroy and the lifetime reaper.
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON epnml.jobs TO %I', ingest);
    -- The request log is append-only.
    EXECUTE format('GRANT SELECT, INSERT ON epnml.inference_log TO %I', ingest);
    EXECUTE format('GRANT USAGE ON SEQUENCE epnml.inference_log_id_seq TO %I', ingest);
    EXECUTE format('GRANT SELECT ON epnml.schema_migrations, epnml.model_registry,'
                   ' epnml.score_drift TO %I', ingest);
    -- Objects of later migrations (created by the owner): read and write, never DELETE
    -- (a migration that needs it grants it explicitly and says why).
    EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA epnml'
                   ' GRANT SELECT, INSERT, UPDATE ON TABLES TO %I', ingest);
    EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA epnml'
                   ' GRANT USAGE, SELECT ON SEQUENCES TO %I', ingest);
END $$;
