-- Which process wrote each granule record (issue #17): the run's own process with the
-- local executors, the Dask worker that computed and wrote the granule with
-- `--executor dask` (each worker writes its granules in transactions of its own).
ALTER TABLE epnml.granule_runs ADD COLUMN hostname text, ADD COLUMN pid integer;
