-- Store integrity (issue #11): granule identity from content and provenance, the source
-- of each version's rows, and run bookkeeping that survives a crash. Hand-written
-- (0008 is the provisioning grants); the generated product tables are not touched.

-- Every source (file content + where it was read from) a granule's rows came from.
-- The ingest runner decides obs_id from these (see epnml.ingest.writer): two different
-- files never share an obs_id, a changed file at the same path keeps its obs_id.
CREATE TABLE epnml.granule_sources (
    pipeline text NOT NULL,
    obs_id text NOT NULL,
    -- sha256 of the granule: of its files' sha256 digests, in path order
    sha256 text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    -- absolute resolved paths (non-UTF-8 bytes backslash-escaped) and sizes in bytes
    paths text[] NOT NULL CHECK (cardinality(paths) > 0),
    sizes bigint[] NOT NULL CHECK (cardinality(sizes) = cardinality(paths)),
    first_run_id text NOT NULL,
    last_run_id text NOT NULL,
    first_seen timestamp NOT NULL,
    last_seen timestamp NOT NULL,
    -- one line per (content, location): the same content moved or copied adds a line
    PRIMARY KEY (pipeline, obs_id, sha256, paths)
);
CREATE INDEX granule_sources_paths ON epnml.granule_sources (pipeline, paths);

-- Which source the latest rows of each (granule, model version) were computed from:
-- a re-ingest of the same source replaces them, another source supersedes them.
CREATE TABLE epnml.granule_versions (
    pipeline text NOT NULL,
    obs_id text NOT NULL,
    model_version text NOT NULL,
    -- NULL: written without a recorded source (e.g. a direct write_granule call)
    sha256 text CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    run_id text,
    committed_at timestamp NOT NULL,
    n_rows integer NOT NULL,
    -- false: stored already superseded (an older version than the current one)
    made_current boolean NOT NULL,
    PRIMARY KEY (pipeline, obs_id, model_version)
);

-- Runs: who runs them (the sweeper closes runs whose process is gone) and how they ended.
ALTER TABLE epnml.runs
    ADD COLUMN status text NOT NULL DEFAULT 'finished'
        CHECK (status IN ('running', 'finished', 'stopped', 'aborted')),
    ADD COLUMN hostname text,
    ADD COLUMN boot_id text,
    ADD COLUMN pid integer,
    -- /proc/<pid>/stat start time (clock ticks since boot): a reused pid is not the run
    ADD COLUMN proc_start bigint,
    ADD COLUMN heartbeat_at timestamp;
UPDATE epnml.runs SET status = 'running' WHERE finished_at IS NULL;
CREATE INDEX runs_unfinished ON epnml.runs (started_at) WHERE finished_at IS NULL;
