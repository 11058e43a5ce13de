-- The aurora family (0018) in the provenance graph of 0016: its rows are entities too.
CREATE OR REPLACE VIEW epnml.prov_rows AS
SELECT 'events'::text AS family, granule_uid, obs_id, pipeline, ml_run_id, ml_model_name,
       ml_model_version, modification_date, superseded_at, datalink_url FROM epnml.events
UNION ALL SELECT 'crossings', granule_uid, obs_id, pipeline, ml_run_id, ml_model_name,
       ml_model_version, modification_date, superseded_at, datalink_url FROM epnml.crossings
UNION ALL SELECT 'landforms', granule_uid, obs_id, pipeline, ml_run_id, ml_model_name,
       ml_model_version, modification_date, superseded_at, datalink_url FROM epnml.landforms
UNION ALL SELECT 'units', granule_uid, obs_id, pipeline, ml_run_id, ml_model_name,
       ml_model_version, modification_date, superseded_at, datalink_url FROM epnml.units
UNION ALL SELECT 'meteors', granule_uid, obs_id, pipeline, ml_run_id, ml_model_name,
       ml_model_version, modification_date, superseded_at, datalink_url FROM epnml.meteors
UNION ALL SELECT 'aurora', granule_uid, obs_id, pipeline, ml_run_id, ml_model_name,
       ml_model_version, modification_date, superseded_at, datalink_url FROM epnml.aurora;
