-- Provenance of every row (issue #16): the W3C PROV / IVOA ProvDM graph of the store as
-- views, one per ProvTAP table (served as epnml_prov.* by rd/provenance/q.rd). The
-- DataLink #provenance document of a row (epnml.provenance) is read from these same views,
-- so the PROV-JSON of a row and the ProvTAP answer are one graph. Identifiers are PROV
-- qualified names in the namespace prefix `epnml` (docs/provenance.md):
--   epnml:row/<granule_uid>            a product row (current or superseded)
--   epnml:run/<run_id>                 an ingest run (activity)
--   epnml:granule/<sha256>             the input files of a granule (content identity)
--   epnml:params/<run_id>              the parameters of a run
--   epnml:model/<name>/<version>       a model version (its weights)
--   epnml:file/<sha256>                a catalogue file a run read (runs.inputs)
--   epnml:dataset/<dataset_id>         a training dataset version (0015)
--   epnml:software/epnml-<version>     the software agent of a run

-- Which software ran each run (the agent): {"epnml": ..., "python": ..., "torch": ...}.
-- Empty for runs recorded before this migration (their agent says "version not recorded").
ALTER TABLE epnml.runs ADD COLUMN software jsonb NOT NULL DEFAULT '{}'::jsonb;

-- Every product row of every family, current and superseded.
CREATE VIEW epnml.prov_rows AS
SELECT 'events'::text AS family, granule_uid, obs_id, pipeline, ml_run_id, ml_model_name,
       ml_model_version, modification_date, superseded_at, datalink_url FROM epnml.events
UNION ALL SELECT 'crossings', granule_uid, obs_id, pipeline, ml_run_id, ml_model_name,
       ml_model_version, modification_date, superseded_at, datalink_url FROM epnml.crossings
UNION ALL SELECT 'landforms', granule_uid, obs_id, pipeline, ml_run_id, ml_model_name,
       ml_model_version, modification_date, superseded_at, datalink_url FROM epnml.landforms
UNION ALL SELECT 'units', granule_uid, obs_id, pipeline, ml_run_id, ml_model_name,
       ml_model_version, modification_date, superseded_at, datalink_url FROM epnml.units
UNION ALL SELECT 'meteors', granule_uid, obs_id, pipeline, ml_run_id, ml_model_name,
       ml_model_version, modification_date, superseded_at, datalink_url FROM epnml.meteors;

-- The source (content) each granule of each run was read from: the granule_sources line
-- that run wrote (first or last run of the line); else the newest line of that granule
-- first seen before the run ended (the content at that path when the run read it).
CREATE VIEW epnml.prov_run_granules AS
SELECT gr.run_id, r.pipeline, gr.granule_id AS obs_id, s.sha256, s.paths, s.sizes
FROM epnml.granule_runs gr
JOIN epnml.runs r USING (run_id)
CROSS JOIN LATERAL (
    SELECT gs.sha256, gs.paths, gs.sizes FROM epnml.granule_sources gs
    WHERE gs.pipeline = r.pipeline AND gs.obs_id = gr.granule_id
    ORDER BY (gs.first_run_id = gr.run_id OR gs.last_run_id = gr.run_id) DESC,
             (gs.first_seen <= coalesce(r.finished_at, 'infinity')) DESC, gs.first_seen DESC
    LIMIT 1) AS s
WHERE gr.status = 'ok';

-- The run that superseded a row: the granule version whose commit set superseded_at
-- (the writer stamps both with one clock reading). Rows whose superseding commit was
-- later overwritten (the same version re-run) have none: the store no longer records it.
CREATE VIEW epnml.prov_invalidations AS
SELECT p.granule_uid, p.superseded_at, gv.run_id
FROM epnml.prov_rows p
JOIN epnml.granule_versions gv
  ON gv.pipeline = p.pipeline AND gv.obs_id = p.obs_id AND gv.made_current
 AND gv.committed_at = p.superseded_at AND gv.run_id IS NOT NULL
WHERE p.superseded_at IS NOT NULL;

CREATE VIEW epnml.prov_entity AS
SELECT 'epnml:row/' || granule_uid AS id, granule_uid AS name, 'epnml:ProductRow'::text AS type,
       datalink_url AS location, modification_date AS generated_at_time,
       superseded_at AS invalidated_at_time, NULL::text AS content_sha256,
       format('row of epnml_%s (obs_id %s), written by %s %s%s', family, obs_id,
              ml_model_name, ml_model_version,
              CASE WHEN superseded_at IS NULL THEN '' ELSE '; superseded' END) AS comment
FROM epnml.prov_rows
UNION ALL
(SELECT DISTINCT ON (sha256) 'epnml:granule/' || sha256,
       array_to_string(ARRAY(SELECT regexp_replace(p, '^.*/', '') FROM unnest(paths) AS p), ', '),
       'epnml:InputGranule', NULL, NULL, NULL, sha256,
       format('%s granule %s: %s file(s), %s bytes; sha256 of the files'' sha256 digests '
              'in path order', pipeline, obs_id, cardinality(paths),
              (SELECT sum(x) FROM unnest(sizes) AS x))
 FROM epnml.granule_sources ORDER BY sha256, first_seen)
UNION ALL
SELECT 'epnml:params/' || run_id, 'parameters of run ' || run_id, 'epnml:Parameters', NULL,
       started_at, NULL, NULL, params::text
FROM epnml.runs
UNION ALL
SELECT 'epnml:model/' || model_name || '/' || model_version, model_name || ' ' || model_version,
       'epnml:ModelVersion', NULL, registered_at, NULL, weights_sha256,
       'weights sha256 ' || weights_sha256
FROM epnml.model_versions
UNION ALL
(SELECT DISTINCT ON (c->>'sha256') 'epnml:file/' || (c->>'sha256'), c->>'name', 'epnml:Catalogue',
       NULL, NULL, NULL, c->>'sha256', 'published catalogue cross-matched by a run'
FROM epnml.runs, jsonb_array_elements(
    CASE WHEN jsonb_typeof(inputs->'catalogues') = 'array' THEN inputs->'catalogues'
         ELSE '[]'::jsonb END) AS c
WHERE c->>'sha256' IS NOT NULL ORDER BY c->>'sha256', started_at)
UNION ALL
SELECT 'epnml:dataset/' || dataset_id, title, 'epnml:TrainingDataset', NULL, registered_at, NULL,
       content_sha256,
       format('%s train, %s validation, %s test samples', n_train, n_validation, n_test)
FROM epnml.dataset_versions;

CREATE VIEW epnml.prov_activity AS
SELECT 'epnml:run/' || run_id AS id, pipeline || ' ingest run ' || run_id AS name,
       'epnml:IngestRun'::text AS type, started_at AS start_time, finished_at AS end_time,
       status,
       format('model %s %s; %s granule(s), %s failed, %s row(s)', model_name, model_version,
              n_granules, n_failed, n_rows) AS comment
FROM epnml.runs;

CREATE VIEW epnml.prov_agent AS
SELECT DISTINCT ON (1)
       'epnml:software/epnml-' || coalesce(software->>'epnml', 'unrecorded') AS id,
       'epnml ' || coalesce(software->>'epnml', '(version not recorded)') AS name,
       'prov:SoftwareAgent'::text AS type,
       CASE WHEN software = '{}'::jsonb THEN 'run recorded before software versions were'
            ' (migration 0016)'
            ELSE format('python %s, torch %s', software->>'python', software->>'torch') END
           AS comment
FROM epnml.runs
ORDER BY 1, started_at DESC;

CREATE VIEW epnml.prov_used AS
SELECT 'epnml:run/' || run_id AS activity_id, 'epnml:granule/' || sha256 AS entity_id,
       'input granule'::text AS role
FROM epnml.prov_run_granules
UNION ALL
SELECT 'epnml:run/' || run_id, 'epnml:model/' || model_name || '/' || model_version, 'model'
FROM epnml.runs
UNION ALL
SELECT 'epnml:run/' || run_id, 'epnml:params/' || run_id, 'parameters'
FROM epnml.runs
UNION ALL
SELECT DISTINCT 'epnml:run/' || run_id, 'epnml:file/' || (c->>'sha256'), 'catalogue'
FROM epnml.runs, jsonb_array_elements(
    CASE WHEN jsonb_typeof(inputs->'catalogues') = 'array' THEN inputs->'catalogues'
         ELSE '[]'::jsonb END) AS c
WHERE c->>'sha256' IS NOT NULL;

CREATE VIEW epnml.prov_wasgeneratedby AS
SELECT 'epnml:row/' || granule_uid AS entity_id, 'epnml:run/' || ml_run_id AS activity_id,
       'product row'::text AS role, modification_date AS generated_at
FROM epnml.prov_rows;

CREATE VIEW epnml.prov_wasassociatedwith AS
SELECT 'epnml:run/' || run_id AS activity_id,
       'epnml:software/epnml-' || coalesce(software->>'epnml', 'unrecorded') AS agent_id,
       'software'::text AS role
FROM epnml.runs;

-- A row was derived from the granule it was computed from (its run may have used others).
-- A model version was derived from the dataset version registered for it, or for its base
-- version (a derived version 1.0.0+threshold-0.3 runs the weights trained on 1.0.0's).
CREATE VIEW epnml.prov_wasderivedfrom AS
SELECT 'epnml:row/' || p.granule_uid AS entity_id, 'epnml:granule/' || g.sha256 AS progenitor_id,
       'input granule'::text AS role
FROM epnml.prov_rows p
JOIN epnml.prov_run_granules g
  ON g.run_id = p.ml_run_id AND g.pipeline = p.pipeline AND g.obs_id = p.obs_id
UNION ALL
SELECT 'epnml:model/' || m.model_name || '/' || m.model_version,
       'epnml:dataset/' || d.dataset_id, 'training' 
FROM epnml.model_versions m
JOIN epnml.dataset_versions d ON d.model_name = m.model_name
 AND d.model_version = CASE WHEN EXISTS (
         SELECT 1 FROM epnml.dataset_versions x
         WHERE x.model_name = m.model_name AND x.model_version = m.model_version)
     THEN m.model_version ELSE split_part(m.model_version, '+', 1) END;

CREATE VIEW epnml.prov_wasinvalidatedby AS
SELECT 'epnml:row/' || granule_uid AS entity_id, 'epnml:run/' || run_id AS activity_id,
       superseded_at AS invalidated_at
FROM epnml.prov_invalidations;

GRANT SELECT ON epnml.prov_entity, epnml.prov_activity, epnml.prov_agent, epnml.prov_used,
    epnml.prov_wasgeneratedby, epnml.prov_wasassociatedwith, epnml.prov_wasderivedfrom,
    epnml.prov_wasinvalidatedby TO gavoadmin WITH GRANT OPTION;
DO $$
DECLARE
    ingest text := current_setting('epnml.ingest_role', true);
BEGIN
    IF coalesce(ingest, '') <> '' THEN
        -- the service reads the graph (DataLink #provenance); views are never written
        EXECUTE format('REVOKE INSERT, UPDATE ON epnml.prov_rows, epnml.prov_run_granules,'
                       ' epnml.prov_invalidations, epnml.prov_entity, epnml.prov_activity,'
                       ' epnml.prov_agent, epnml.prov_used, epnml.prov_wasgeneratedby,'
                       ' epnml.prov_wasassociatedwith, epnml.prov_wasderivedfrom,'
                       ' epnml.prov_wasinvalidatedby FROM %I', ingest);
    END IF;
END $$;
