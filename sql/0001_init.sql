-- Storage schema bookkeeping. The schema `epnml` itself and the role are
-- created by the provisioning script (they need a superuser).
CREATE TABLE epnml.model_versions (
    model_name text NOT NULL,
    model_version text NOT NULL,
    weights_sha256 text NOT NULL,
    card jsonb NOT NULL DEFAULT '{}'::jsonb,
    registered_at timestamp NOT NULL DEFAULT (now() AT TIME ZONE 'utc'),
    PRIMARY KEY (model_name, model_version)
);

CREATE TABLE epnml.runs (
    run_id text PRIMARY KEY,
    pipeline text NOT NULL,
    model_name text NOT NULL,
    model_version text NOT NULL,
    started_at timestamp NOT NULL,
    finished_at timestamp,
    params jsonb NOT NULL DEFAULT '{}'::jsonb,
    n_granules integer NOT NULL DEFAULT 0,
    n_failed integer NOT NULL DEFAULT 0,
    n_rows integer NOT NULL DEFAULT 0
);

-- One line per granule attempt: the run summary and the audit of failures.
CREATE TABLE epnml.granule_runs (
    run_id text NOT NULL REFERENCES epnml.runs (run_id),
    granule_id text NOT NULL,
    files text NOT NULL,
    status text NOT NULL CHECK (status IN ('ok', 'failed')),
    n_rows integer NOT NULL DEFAULT 0,
    n_superseded integer NOT NULL DEFAULT 0,
    error text,
    seconds double precision,
    PRIMARY KEY (run_id, granule_id)
);
