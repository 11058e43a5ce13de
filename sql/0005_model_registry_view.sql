-- The model registry as served through TAP (epnml_models.versions, rd/models/q.rd):
-- every model version with its weights checksum and model card (JSON text), plus
-- how many current and superseded rows each version wrote into the product tables.
CREATE VIEW epnml.model_registry AS
SELECT m.model_name, m.model_version, m.weights_sha256, m.registered_at,
       m.card->>'data' AS training_data,
       m.card->>'command' AS training_command,
       (m.card->'metrics')::text AS metrics,
       m.card::text AS card,
       COALESCE(r.n_current, 0)::bigint AS n_current_rows,
       COALESCE(r.n_superseded, 0)::bigint AS n_superseded_rows
FROM epnml.model_versions m
LEFT JOIN (
    SELECT ml_model_name, ml_model_version,
           count(*) FILTER (WHERE superseded_at IS NULL) AS n_current,
           count(*) FILTER (WHERE superseded_at IS NOT NULL) AS n_superseded
    FROM (
        SELECT ml_model_name, ml_model_version, superseded_at FROM epnml.events
        UNION ALL SELECT ml_model_name, ml_model_version, superseded_at FROM epnml.crossings
        UNION ALL SELECT ml_model_name, ml_model_version, superseded_at FROM epnml.landforms
        UNION ALL SELECT ml_model_name, ml_model_version, superseded_at FROM epnml.units
    ) AS all_rows
    GROUP BY ml_model_name, ml_model_version
) AS r ON r.ml_model_name = m.model_name AND r.ml_model_version = m.model_version;
GRANT SELECT ON epnml.model_registry TO gavoadmin WITH GRANT OPTION;
