-- The HTTP service (`epnml serve`, issue #6): UWS jobs, the inference request log and
-- the per-model score drift. Hand-written (not generated from schemas/).

-- UWS 1.1 jobs, persisted so that a restart loses none: QUEUED ones resume, EXECUTING
-- ones left by a dead process are re-queued once (attempts) and then fail cleanly.
CREATE TABLE epnml.jobs (
    job_id text PRIMARY KEY CHECK (job_id ~ '^[a-z0-9]{8,40}$'),
    phase text NOT NULL DEFAULT 'PENDING' CHECK (phase IN (
        'PENDING', 'QUEUED', 'EXECUTING', 'COMPLETED', 'ERROR', 'ABORTED', 'UNKNOWN',
        'HELD', 'SUSPENDED', 'ARCHIVED')),
    -- who created it: 'anonymous' or 'token:<sha256 prefix>' (never the token itself)
    owner text NOT NULL,
    pipeline text NOT NULL,
    -- MODEL_VERSION, THRESHOLD, ... as given (validated) by the client
    params jsonb NOT NULL DEFAULT '{}'::jsonb,
    -- granule_uid values (ID parameters) whose source granules the job re-runs
    granule_ids text[] NOT NULL DEFAULT '{}',
    commit boolean NOT NULL DEFAULT false,
    creation_time timestamptz NOT NULL DEFAULT now(),
    start_time timestamptz,
    end_time timestamptz,
    destruction_time timestamptz NOT NULL,
    -- seconds; 0 = unlimited
    execution_duration integer NOT NULL DEFAULT 0 CHECK (execution_duration >= 0),
    -- which service process runs it and when it last said so (orphan detection)
    worker_id text,
    heartbeat timestamptz,
    attempts integer NOT NULL DEFAULT 0,
    error text,
    result jsonb,
    n_rows integer
);
CREATE INDEX jobs_queue ON epnml.jobs (creation_time) WHERE phase = 'QUEUED';
CREATE INDEX jobs_destruction ON epnml.jobs (destruction_time);

-- One line per inference request (preview, commit, job run): who, what, which model,
-- how long, outcome. `client` is the IP plus a sha256 prefix of the token, if any.
CREATE TABLE epnml.inference_log (
    id bigserial PRIMARY KEY,
    ts timestamptz NOT NULL DEFAULT now(),
    client text NOT NULL,
    endpoint text NOT NULL,
    pipeline text,
    granule_id text,
    model_version text,
    params jsonb NOT NULL DEFAULT '{}'::jsonb,
    seconds double precision,
    outcome text NOT NULL,
    http_status integer,
    error text
);
CREATE INDEX inference_log_ts ON epnml.inference_log (ts);

-- Per-model drift indicator: the distribution of ml_score per month of creation_date
-- (month_start: "month" is an ADQL reserved word),
-- over current AND superseded rows of every product table.
CREATE VIEW epnml.score_drift AS
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
) AS all_rows
GROUP BY ml_model_name, ml_model_version, date_trunc('month', creation_date);
GRANT SELECT ON epnml.score_drift TO gavoadmin WITH GRANT OPTION;
