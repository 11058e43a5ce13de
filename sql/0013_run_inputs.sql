-- What a run read besides its files and model (issue #13): the published catalogues a
-- stage cross-matched, by file name and sha256 (epnml.ingest.stage.Stage.run_inputs), or
-- why they were not available. The catalogue versions are in their file names.
ALTER TABLE epnml.runs ADD COLUMN inputs jsonb NOT NULL DEFAULT '{}'::jsonb;
