-- Training datasets as published products (issue #16): every model version records the
-- exact samples it was trained, validated and tested on, their source files (with
-- checksums and origin) and who made each label. Filled by `epnml datasets register`
-- from the experiments' split definitions; served through TAP (rd/datasets) and joined
-- with epnml_models.versions on (model_name, model_version). Never updated in place:
-- a changed sample set is a new dataset_id (its content hash differs).
CREATE TABLE epnml.dataset_versions (
    dataset_id text PRIMARY KEY,          -- '<model_name>-<model_version>@<sha256[:12]>'
    model_name text NOT NULL,
    model_version text NOT NULL,
    content_sha256 text NOT NULL,         -- over the sorted sample records and source checksums
    title text NOT NULL,
    description text NOT NULL,
    n_train integer NOT NULL,
    n_validation integer NOT NULL,
    n_test integer NOT NULL,
    quality jsonb NOT NULL DEFAULT '{}'::jsonb,   -- class balance, duplicates, label agreement
    datacite jsonb NOT NULL DEFAULT '{}'::jsonb,  -- DataCite 4.x metadata, ready for a DOI
    registered_at timestamp NOT NULL DEFAULT (now() AT TIME ZONE 'utc'),
    UNIQUE (model_name, model_version, content_sha256)
);

CREATE TABLE epnml.dataset_sources (
    dataset_id text NOT NULL REFERENCES epnml.dataset_versions (dataset_id),
    source_file text NOT NULL,            -- path relative to the shared-data root, or simulator name
    sha256 text,                          -- NULL for a simulator (then seed is set)
    origin text NOT NULL CHECK (origin IN ('catalogue', 'archive', 'simulator')),
    seed integer,
    reference text,                       -- citation / DOI / URL of the published source
    PRIMARY KEY (dataset_id, source_file)
);

CREATE TABLE epnml.dataset_samples (
    dataset_id text NOT NULL REFERENCES epnml.dataset_versions (dataset_id),
    sample_id text NOT NULL,              -- e.g. ICMECAT id, HiRISE product id + crop, orbit
    split text NOT NULL CHECK (split IN ('train', 'validation', 'test')),
    source_file text NOT NULL,
    obs_id text,                          -- observation / granule the sample comes from
    time_min timestamp,
    time_max timestamp,
    label text NOT NULL,
    label_source text NOT NULL,           -- catalogue, annotator or simulator that made the label
    PRIMARY KEY (dataset_id, sample_id),
    FOREIGN KEY (dataset_id, source_file) REFERENCES epnml.dataset_sources (dataset_id, source_file)
);
CREATE INDEX dataset_samples_obs ON epnml.dataset_samples (obs_id);
CREATE INDEX dataset_versions_model ON epnml.dataset_versions (model_name, model_version);

GRANT SELECT ON epnml.dataset_versions, epnml.dataset_sources, epnml.dataset_samples
    TO gavoadmin WITH GRANT OPTION;
DO $$
DECLARE
    ingest text := current_setting('epnml.ingest_role', true);
BEGIN
    IF coalesce(ingest, '') <> '' THEN
        -- registration only adds: a dataset version is never changed or deleted
        EXECUTE format('GRANT SELECT, INSERT ON epnml.dataset_versions, epnml.dataset_sources, '
                       'epnml.dataset_samples TO %I', ingest);
    END IF;
END $$;
