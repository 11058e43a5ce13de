-- The solar-wind series the icme pipeline ingested (issue #16, HAPI): the series its reader
-- made of each granule (epnml.ingest.stage.SolarWindSeries), written by the ingest writer
-- in the same transaction as the granule's rows, served by /hapi as one dataset per
-- (spacecraft, cadence, simulated).
--
-- Keyed by CONTENT: a series is a function of its granule's files, so it is stored once per
-- sha256 of the files (the sha256 of epnml.granule_sources). Re-ingesting identical files
-- (another run, another model version, the same file copied elsewhere) finds the series
-- stored and writes no sample; nothing is ever deleted. Which granule holds which series is
-- epnml.solarwind_granules: a changed file of the same granule (a reprocessed product, same
-- obs_id) adds its series and marks the previous one superseded, as product rows are.
CREATE TABLE epnml.solarwind_series (
    sha256 text PRIMARY KEY CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    spacecraft text NOT NULL,             -- instrument_host_name of the rows: Wind, ACE, OMNI, STEREO-A...
    cadence_s double precision NOT NULL CHECK (cadence_s > 0),
    simulated boolean NOT NULL,           -- simulated inputs (the demo's): never mixed with real data
    n_samples integer NOT NULL CHECK (n_samples >= 0),
    time_min timestamp,                   -- first and last sample time (UTC)
    time_max timestamp,
    first_run_id text NOT NULL,
    stored_at timestamp NOT NULL
);
CREATE INDEX solarwind_series_dataset ON epnml.solarwind_series (spacecraft, cadence_s, simulated);

CREATE TABLE epnml.solarwind_samples (
    sha256 text NOT NULL REFERENCES epnml.solarwind_series (sha256),
    time timestamp NOT NULL,              -- UTC, bin start (10-min) or interval centre (hourly)
    np double precision,                  -- proton density, cm^-3
    vt double precision,                  -- bulk speed |V|, km/s
    tp double precision,                  -- proton temperature, K
    bx double precision,                  -- magnetic field components, nT
    by double precision,
    bz double precision,
    bt double precision,                  -- |B|, nT
    beta double precision,                -- proton plasma beta
    pdyn double precision,                -- dynamic pressure, Pa
    PRIMARY KEY (sha256, time)
);
CREATE INDEX solarwind_samples_time ON epnml.solarwind_samples (time);

CREATE TABLE epnml.solarwind_granules (
    pipeline text NOT NULL,
    obs_id text NOT NULL,
    sha256 text NOT NULL REFERENCES epnml.solarwind_series (sha256),
    first_run_id text NOT NULL,
    last_run_id text NOT NULL,
    first_seen timestamp NOT NULL,
    last_seen timestamp NOT NULL,
    superseded_at timestamp,              -- NULL: the granule's current series (served)
    PRIMARY KEY (pipeline, obs_id, sha256)
);
CREATE UNIQUE INDEX solarwind_granules_current ON epnml.solarwind_granules (pipeline, obs_id)
    WHERE superseded_at IS NULL;
CREATE INDEX solarwind_granules_sha ON epnml.solarwind_granules (sha256) WHERE superseded_at IS NULL;

-- The ingest role gets SELECT, INSERT, UPDATE through the default privileges of 0008 (no
-- DELETE: samples are only ever added).
