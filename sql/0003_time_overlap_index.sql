-- EPN-TAP time-overlap queries (time_min <= t1 AND time_max >= t0) are unselective on
-- either column alone, so the btree indexes cannot serve them. A two-column GiST
-- (btree_gist) keeps (time_min, time_max) bounding boxes and prunes on both
-- conditions at once. The extension is created by service/provision.sh (superuser).
CREATE INDEX events_time_gist ON epnml.events USING gist (time_min, time_max);
CREATE INDEX crossings_time_gist ON epnml.crossings USING gist (time_min, time_max);
CREATE INDEX landforms_time_gist ON epnml.landforms USING gist (time_min, time_max);
CREATE INDEX units_time_gist ON epnml.units USING gist (time_min, time_max);
