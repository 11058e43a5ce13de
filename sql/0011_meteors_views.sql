-- The model registry and score-drift views (0005, 0007) over every product table,
-- now with epnml.meteors (0010). Hand-written; the views keep their columns, so
-- CREATE OR REPLACE keeps the grants of 0005/0007/0008.
CREATE OR REPLACE VIEW epnml.model_registry AS
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
        UNION ALL SELECT ml_model_name, ml_model_version, superseded_at FROM epnml.meteors
    ) AS all_rows
    GROUP BY ml_model_name, ml_model_version
) AS r ON r.ml_model_name = m.model_name AND r.ml_model_version = m.model_version;
CREATE OR REPLACE VIEW epnml.score_drift AS
SELECT ml_model_name AS model_name, ml_model_version AS model_version,
       date_trunc('month', creation_date) AS month_start,
       count(*)::bigint AS n_rows,
       count(ml_score)::bigint AS n_scored,
       count(*) FILTER (WHERE superseded_at IS NULL)::bigint AS n_current,
       avg(ml_score) AS score_mean,
       percentile_cont(0.1) WITHIN GROUP (ORDER BY ml_score) AS score_p10,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY ml_score) AS score_p50,
       percentile_cont(0.9) WITHIN GROUP (ORDER BY ml_score) AS score_p90
FROM (
    SELECT ml_model_name, ml_model_version, creation_date, ml_score, superseded_at
    FROM epnml.events
    UNION ALL SELECT ml_model_name, ml_model_version, creation_date, ml_score, superseded_at
    FROM epnml.crossings
    UNION ALL SELECT ml_model_name, ml_model_version, creation_date, ml_score, superseded_at
    FROM epnml.landforms
    UNION ALL SELECT ml_model_name, ml_model_version, creation_date, ml_score, superseded_at
    FROM epnml.units
    UNION ALL SELECT ml_model_name, ml_model_version, creation_date, ml_score, superseded_at
    FROM epnml.meteors
) AS all_rows
GROUP BY ml_model_name, ml_model_version, date_trunc('month', creation_date);
