-- Retired granules (operator's `epnml db retire`): their current rows were superseded
-- without a newer version, e.g. an input withdrawn from the demo or found wrong after
-- ingest. Rows stay stored (superseded, never deleted); this says when, why and how many.
CREATE TABLE epnml.retirements (
    pipeline text NOT NULL,
    obs_id text NOT NULL,
    retired_at timestamp NOT NULL,
    reason text NOT NULL CHECK (length(reason) > 0),
    n_rows integer NOT NULL,
    PRIMARY KEY (pipeline, obs_id, retired_at)
);
DO $$
DECLARE
    ingest text := current_setting('epnml.ingest_role', true);
BEGIN
    IF coalesce(ingest, '') <> '' THEN
        EXECUTE format('GRANT SELECT, INSERT ON epnml.retirements TO %I', ingest);
    END IF;
END $$;
