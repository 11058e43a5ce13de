"""Generate ``sql/0023_partitions.sql``: the product tables become partitioned tables
(issue #17, docs/scale.md), from each family's :class:`~epnml.schemas.products.Partitioning`.

The migration converts applied databases in place: every view that reads a product table
is saved, the old table renamed, the partitioned one created with the same name, columns
(in the applied order), checks, indexes, triggers and grants, the rows copied, counted,
and only then the old table dropped and the views re-created from their saved text.
``granule_uid`` stays unique across every partition and family through the narrow table
``epnml.granule_uids``, kept by statement triggers (a unique key of a partitioned table
must hold the partition keys, so the tables' own key cannot).
"""

from __future__ import annotations

import re
from datetime import date

from epnml.schemas.products import PRODUCTS, Partitioning, Product
from epnml.schemas.render import PRODUCTS_SQL, index_sql, table_sql

PARTITIONS_SQL = PRODUCTS_SQL.parent / "0023_partitions.sql"
LEAF_UIDS_SQL = PRODUCTS_SQL.parent / "0024_leaf_uid_triggers.sql"
LEAN_INDEXES_SQL = PRODUCTS_SQL.parent / "0025_lean_indexes.sql"
_UNIX_EPOCH_JD = 2440587.5


def year_start_jd(year: int) -> float:
    """Julian Day of 1 January ``year``, 00:00 (the tables' time_min is a JD)."""
    return _UNIX_EPOCH_JD + (date(year, 1, 1) - date(1970, 1, 1)).days


def slug(target: str) -> str:
    """A target name as a table-name part: 'solar wind' -> 'solar_wind'."""
    out = re.sub(r"[^a-z0-9]+", "_", target.lower()).strip("_")
    if not out:
        raise ValueError(f"target {target!r} gives no partition name")
    return out


def partition_key(product: Product) -> str:
    """The table's unique key: granule_uid with every partition key (PostgreSQL's rule)."""
    part = _partitioning(product)
    second = "time_min" if part.years else "obs_id"
    return f"UNIQUE (granule_uid, target_name, {second})"


def _partitioning(product: Product) -> Partitioning:
    if product.partitioning is None:
        raise ValueError(f"{product.family}: no partitioning")
    return product.partitioning


def leaves(product: Product) -> list[str]:
    """The leaf partitions (they hold the rows) of the family's table, as generated."""
    part = _partitioning(product)
    table = product.storage_table
    out = []
    for target in part.targets:
        sub = f"{table}__{slug(target)}"
        if part.years:
            out += [f"{sub}__{year}" for year in range(part.years[0], part.years[1] + 1)]
            out.append(f"{sub}__default")
        else:
            out += [f"{sub}__h{k}" for k in range(part.hash_parts)]
    out.append(f"{table}__default")
    return out


def leaf_of(product: Product, target: str, time_min: float | None) -> str:
    """The leaf partition of a row of ``target`` at ``time_min``; for a HASH (obs_id)
    level the parent of the hash parts (the part needs PostgreSQL's hash:
    ``satisfies_hash_partition``). PostgreSQL checks the partition constraint of every
    row written into a partition, so a wrong answer here fails, never misplaces a row."""
    part = _partitioning(product)
    if target not in part.targets:
        return f"{product.storage_table}__default"
    sub = f"{product.storage_table}__{slug(target)}"
    if not part.years:
        return sub
    first, last = part.years
    if time_min is None or not year_start_jd(first) <= time_min < year_start_jd(last + 1):
        return f"{sub}__default"
    year = first
    while year < last and time_min >= year_start_jd(year + 1):
        year += 1
    return f"{sub}__{year}"


def partition_tables_sql(product: Product) -> str:
    """The partitioned table, its partitions, indexes and triggers (empty, no grants)."""
    part = _partitioning(product)
    f, table = product.family, product.storage_table
    out = [table_sql(product, product.stored_columns(), partition_key(product),
                     " PARTITION BY LIST (target_name)")]
    for target in part.targets:
        sub = f"{table}__{slug(target)}"
        quoted = target.replace("'", "''")
        if part.years:
            out.append(f"CREATE TABLE {sub} PARTITION OF {table} FOR VALUES IN ('{quoted}')"
                       " PARTITION BY RANGE (time_min);\n")
            first, last = part.years
            for year in range(first, last + 1):
                out.append(f"CREATE TABLE {sub}__{year} PARTITION OF {sub} FOR VALUES FROM "
                           f"({year_start_jd(year)}) TO ({year_start_jd(year + 1)});\n")
        else:
            out.append(f"CREATE TABLE {sub} PARTITION OF {table} FOR VALUES IN ('{quoted}')"
                       " PARTITION BY HASH (obs_id);\n")
            for k in range(part.hash_parts):
                out.append(f"CREATE TABLE {sub}__h{k} PARTITION OF {sub} FOR VALUES WITH "
                           f"(MODULUS {part.hash_parts}, REMAINDER {k});\n")
        # NULL time_min or a year outside the span (time series); no row of a hash level
        # can miss its parts, but the level keeps the same shape
        if part.years:
            out.append(f"CREATE TABLE {sub}__default PARTITION OF {sub} DEFAULT;\n")
    out.append(f"CREATE TABLE {table}__default PARTITION OF {table} DEFAULT;\n")
    out.append(index_sql(product))
    out.append(f"CREATE INDEX {f}_time_gist ON {table} USING gist (time_min, time_max);\n")
    out.append(
        f"CREATE TRIGGER {f}_keep_superseded BEFORE DELETE ON {table}\n"
        "    FOR EACH ROW EXECUTE FUNCTION epnml.keep_superseded_rows();\n"
        f"CREATE TRIGGER {f}_uids_insert AFTER INSERT ON {table} REFERENCING NEW TABLE AS"
        " new_rows\n    FOR EACH STATEMENT EXECUTE FUNCTION epnml.granule_uids_add();\n"
        f"CREATE TRIGGER {f}_uids_update AFTER UPDATE ON {table} REFERENCING OLD TABLE AS"
        " old_rows NEW TABLE AS new_rows\n"
        "    FOR EACH STATEMENT EXECUTE FUNCTION epnml.granule_uids_add();\n"
        f"CREATE TRIGGER {f}_uids_delete AFTER DELETE ON {table} REFERENCING OLD TABLE AS"
        " old_rows\n    FOR EACH STATEMENT EXECUTE FUNCTION epnml.granule_uids_delete();\n"
        f"CREATE TRIGGER {f}_uids_truncate AFTER TRUNCATE ON {table}\n"
        "    FOR EACH STATEMENT EXECUTE FUNCTION epnml.granule_uids_truncate();\n")
    return "".join(out)


def leaf_triggers_sql(product: Product) -> str:
    """The granule_uids statement triggers on each partition (the per-target parents and
    the leaves): a statement names one table, and only that table's statement triggers
    fire, so rows written into a partition directly (the writer's COPY, or any other path)
    are checked here, rows written through the family's table by its own triggers. No
    TRUNCATE trigger: truncating one partition leaves its uids registered (they stay
    taken; nothing can be duplicated)."""
    f = product.family
    out = []
    # the per-target parents too: a statement naming one routes to its partitions
    subs = [f"{product.storage_table}__{slug(t)}" for t in _partitioning(product).targets]
    for leaf in subs + leaves(product):
        name = leaf.split(".", 1)[1]
        out.append(
            f"CREATE TRIGGER {name}_uids_insert AFTER INSERT ON {leaf}"
            f" REFERENCING NEW TABLE AS new_rows\n    FOR EACH STATEMENT EXECUTE FUNCTION"
            f" epnml.granule_uids_add('{f}');\n"
            f"CREATE TRIGGER {name}_uids_update AFTER UPDATE ON {leaf}"
            " REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows\n    FOR EACH STATEMENT"
            f" EXECUTE FUNCTION epnml.granule_uids_add('{f}');\n"
            f"CREATE TRIGGER {name}_uids_delete AFTER DELETE ON {leaf}"
            " REFERENCING OLD TABLE AS old_rows\n    FOR EACH STATEMENT EXECUTE FUNCTION"
            " epnml.granule_uids_delete();\n")
    return "".join(out)


_LEAF_HEAD = """-- GENERATED by `python -m epnml.schemas.render` from schemas/
-- (epnml.schemas.partitions.leaf_triggers_sql); do not edit.
-- Issue #17: the writer COPYs a granule straight into its leaf partition (a COPY into a
-- partitioned table with transition-table triggers inserts row by row; into a partition it
-- inserts in batches). A statement fires only the statement triggers of the table it
-- names, so every partition gets the granule_uids triggers of its family: granule_uid stays
-- unique across partitions and families whichever table a row is written through (before
-- this migration a row written into a partition directly was not registered at all).
-- The trigger's argument is the family (TG_TABLE_NAME is the partition's name there).
CREATE OR REPLACE FUNCTION epnml.granule_uids_add() RETURNS trigger LANGUAGE plpgsql
SECURITY DEFINER SET search_path = pg_catalog, epnml AS $$
DECLARE
    fam text := coalesce(TG_ARGV[0], TG_TABLE_NAME);
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO epnml.granule_uids (granule_uid, family)
            SELECT granule_uid, fam FROM new_rows;
    ELSIF EXISTS (SELECT 1 FROM old_rows o FULL JOIN new_rows n USING (granule_uid)
                  WHERE o.granule_uid IS NULL OR n.granule_uid IS NULL) THEN
        DELETE FROM epnml.granule_uids u
            WHERE u.granule_uid IN (SELECT granule_uid FROM old_rows
                                    EXCEPT SELECT granule_uid FROM new_rows);
        INSERT INTO epnml.granule_uids (granule_uid, family)
            SELECT granule_uid, fam FROM (SELECT granule_uid FROM new_rows
                                          EXCEPT SELECT granule_uid FROM old_rows) AS n;
    END IF;
    RETURN NULL;
EXCEPTION WHEN unique_violation THEN
    RAISE EXCEPTION 'epnml.%: a granule_uid is already stored (granule_uid is unique across '
        'every product family): %', fam, SQLERRM USING ERRCODE = 'unique_violation';
END $$;
-- only the triggers write the registry (SECURITY DEFINER); the ingest role reads it (the
-- writer looks a granule's uids up there: one index instead of every partition's key)
DO $$
DECLARE
    ingest text := current_setting('epnml.ingest_role', true);
BEGIN
    IF coalesce(ingest, '') <> '' THEN
        EXECUTE format('REVOKE INSERT, UPDATE, DELETE ON epnml.granule_uids FROM %I', ingest);
        EXECUTE format('GRANT SELECT ON epnml.granule_uids TO %I', ingest);
    END IF;
END $$;

"""


def leaf_uids_sql() -> str:
    products = [p for p in PRODUCTS.values() if p.partitioning is not None]
    return _LEAF_HEAD + "\n".join(f"-- {p.family}\n{leaf_triggers_sql(p)}" for p in products)


def convert_sql(product: Product) -> str:
    """Convert one applied table: rename it (and its indexes), create the partitioned
    table, copy the grants and every row, check the count."""
    f, table = product.family, product.storage_table
    cols = ", ".join(c.name for c in product.stored_columns())
    return f"""-- {f}: {_describe(product)}
ALTER TABLE {table} RENAME TO {f}_unpartitioned;
SELECT epnml.rename_indexes_aside('{table}_unpartitioned'::regclass);
{partition_tables_sql(product)}SELECT epnml.copy_grants('{table}_unpartitioned'::regclass,
                         '{table}'::regclass);
INSERT INTO {table} ({cols})
    SELECT {cols} FROM {table}_unpartitioned;
SELECT epnml.check_copied('{table}_unpartitioned'::regclass, '{table}'::regclass);
"""


def _describe(product: Product) -> str:
    part = _partitioning(product)
    level2 = (f"RANGE (time_min) per year {part.years[0]}-{part.years[1]}" if part.years
              else f"HASH (obs_id) in {part.hash_parts} parts")
    return f"LIST (target_name) {', '.join(part.targets)} -> {level2}, DEFAULT partitions"


_HEAD = """-- GENERATED by `python -m epnml.schemas.render` from schemas/ (Product.partitioning,
-- epnml.schemas.partitions); do not edit.
-- Issue #17 (docs/scale.md): the product tables become partitioned tables of the same
-- names, converted in place keeping every row. Run, like every migration, in one
-- transaction: a failure leaves the old tables as they were.

-- granule_uid is unique across every family and partition (the tables' own unique keys
-- must include their partition keys): one narrow row per stored row, kept by statement
-- triggers with transition tables (one INSERT per statement, not one per row).
CREATE TABLE epnml.granule_uids (
    granule_uid text PRIMARY KEY,
    family text NOT NULL
);
-- SECURITY DEFINER: the ingest role writes rows, never this table directly. On UPDATE
-- only a changed granule_uid (the writer's archived copy of a replaced row) matters.
CREATE FUNCTION epnml.granule_uids_add() RETURNS trigger LANGUAGE plpgsql
SECURITY DEFINER SET search_path = pg_catalog, epnml AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO epnml.granule_uids (granule_uid, family)
            SELECT granule_uid, TG_TABLE_NAME FROM new_rows;
    ELSIF EXISTS (SELECT 1 FROM old_rows o FULL JOIN new_rows n USING (granule_uid)
                  WHERE o.granule_uid IS NULL OR n.granule_uid IS NULL) THEN
        DELETE FROM epnml.granule_uids u
            WHERE u.granule_uid IN (SELECT granule_uid FROM old_rows
                                    EXCEPT SELECT granule_uid FROM new_rows);
        INSERT INTO epnml.granule_uids (granule_uid, family)
            SELECT granule_uid, TG_TABLE_NAME FROM (SELECT granule_uid FROM new_rows
                                                    EXCEPT SELECT granule_uid FROM old_rows) AS n;
    END IF;
    RETURN NULL;
EXCEPTION WHEN unique_violation THEN
    RAISE EXCEPTION 'epnml.%: a granule_uid is already stored (granule_uid is unique across '
        'every product family): %', TG_TABLE_NAME, SQLERRM USING ERRCODE = 'unique_violation';
END $$;
CREATE FUNCTION epnml.granule_uids_delete() RETURNS trigger LANGUAGE plpgsql
SECURITY DEFINER SET search_path = pg_catalog, epnml AS $$
BEGIN
    DELETE FROM epnml.granule_uids u USING old_rows o WHERE u.granule_uid = o.granule_uid;
    RETURN NULL;
END $$;
-- TRUNCATE (the owner's, e.g. a benchmark's reset) fires no row or DELETE trigger
CREATE FUNCTION epnml.granule_uids_truncate() RETURNS trigger LANGUAGE plpgsql
SECURITY DEFINER SET search_path = pg_catalog, epnml AS $$
BEGIN
    DELETE FROM epnml.granule_uids WHERE family = TG_TABLE_NAME;
    RETURN NULL;
END $$;
CREATE INDEX granule_uids_family ON epnml.granule_uids (family);
REVOKE ALL ON FUNCTION epnml.granule_uids_add(), epnml.granule_uids_delete(),
    epnml.granule_uids_truncate() FROM PUBLIC;

-- Helpers of this conversion (dropped at the end).
CREATE FUNCTION epnml.rename_indexes_aside(old regclass) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    idx record;
BEGIN
    -- the partitioned table re-uses the index names (its constraints rename with them)
    FOR idx IN SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
            WHERE i.indrelid = old LOOP
        EXECUTE format('ALTER INDEX epnml.%I RENAME TO %I', idx.relname,
                       left(idx.relname, 50) || '_unpartitioned');
    END LOOP;
END $$;
CREATE FUNCTION epnml.copy_grants(old regclass, new regclass) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    g record;
BEGIN
    FOR g IN SELECT a.grantee, a.privilege_type, a.is_grantable
            FROM pg_class c, aclexplode(c.relacl) a
            WHERE c.oid = old AND a.grantee <> c.relowner LOOP
        EXECUTE format('GRANT %s ON %s TO %s%s', g.privilege_type, new,
                       CASE g.grantee WHEN 0 THEN 'PUBLIC'
                           ELSE quote_ident(g.grantee::regrole::text) END,
                       CASE WHEN g.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
    END LOOP;
END $$;
CREATE FUNCTION epnml.check_copied(old regclass, new regclass) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    n_old bigint;
    n_new bigint;
BEGIN
    EXECUTE format('SELECT count(*) FROM %s', old) INTO n_old;
    EXECUTE format('SELECT count(*) FROM %s', new) INTO n_new;
    IF n_old <> n_new THEN
        RAISE EXCEPTION '%: % rows copied of %; nothing converted', new, n_new, n_old;
    END IF;
END $$;

-- Every view reading a product table, directly or through another view (the model
-- registry, score drift and provenance views of epnml; DaCHS' <schema>.epn_core): saved
-- here, re-created once the partitioned tables exist.
CREATE TEMP TABLE saved_views ON COMMIT DROP AS
WITH RECURSIVE deps(oid, depth) AS (
    SELECT r.ev_class, 1 FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid
    WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass
      AND d.refobjid IN (@TABLES@) AND r.ev_class <> d.refobjid
    UNION
    SELECT r.ev_class, deps.depth + 1 FROM deps
    JOIN pg_depend d ON d.refobjid = deps.oid AND d.refclassid = 'pg_class'::regclass
                    AND d.classid = 'pg_rewrite'::regclass
    JOIN pg_rewrite r ON r.oid = d.objid AND r.ev_class <> deps.oid
)
SELECT c.oid, max(deps.depth) AS depth, n.nspname, c.relname, c.relkind,
       pg_get_viewdef(c.oid) AS definition, c.relowner::regrole::text AS owner, c.relacl,
       c.reloptions, obj_description(c.oid, 'pg_class') AS comment
FROM deps JOIN pg_class c ON c.oid = deps.oid JOIN pg_namespace n ON n.oid = c.relnamespace
GROUP BY c.oid, n.nspname, c.relname, c.relkind, c.relowner, c.relacl, c.reloptions;
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM saved_views WHERE relkind <> 'v') THEN
        RAISE EXCEPTION 'a materialized view reads a product table: drop it before migrating';
    END IF;
END $$;

"""

_TAIL = """-- the old tables go only now that every row is copied; their views with them
@DROPS@
-- the views again, from their saved text (which names the tables, now partitioned).
-- A view in a schema this role may not create in (DaCHS' epn_core views, owned by
-- gavoadmin, when the owner role migrates) is re-created by `dachs imp` of its RD, which
-- service/provision.sh runs after every migration.
DO $$
DECLARE
    v record;
    g record;
    opts text;
BEGIN
    FOR v IN SELECT * FROM saved_views ORDER BY depth, nspname, relname LOOP
        opts := CASE WHEN v.reloptions IS NULL THEN ''
                     ELSE format(' WITH (%s)', array_to_string(v.reloptions, ', ')) END;
        BEGIN
            EXECUTE format('CREATE VIEW %I.%I%s AS %s', v.nspname, v.relname, opts,
                           v.definition);
            IF v.owner <> current_user::text THEN
                EXECUTE format('ALTER VIEW %I.%I OWNER TO %I', v.nspname, v.relname, v.owner);
            END IF;
            IF v.comment IS NOT NULL THEN
                EXECUTE format('COMMENT ON VIEW %I.%I IS %L', v.nspname, v.relname, v.comment);
            END IF;
            FOR g IN SELECT a.grantee, a.privilege_type, a.is_grantable
                    FROM aclexplode(v.relacl) a WHERE a.grantee::regrole::text <> v.owner LOOP
                EXECUTE format('GRANT %s ON %I.%I TO %s%s', g.privilege_type, v.nspname,
                    v.relname,
                    CASE g.grantee WHEN 0 THEN 'PUBLIC'
                        ELSE quote_ident(g.grantee::regrole::text) END,
                    CASE WHEN g.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
            END LOOP;
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE WARNING 'view %.% not re-created here (%): run dachs imp of its RD',
                v.nspname, v.relname, SQLERRM;
        END;
    END LOOP;
END $$;
DROP FUNCTION epnml.rename_indexes_aside(regclass), epnml.copy_grants(regclass, regclass),
    epnml.check_copied(regclass, regclass);
-- a partitioned parent is never analysed by autovacuum: the planner needs its statistics
@ANALYZE@
"""


def partitions_sql() -> str:
    products = [p for p in PRODUCTS.values() if p.partitioning is not None]
    tables = ", ".join(f"'{p.storage_table}'::regclass" for p in products)
    head = _HEAD.replace("@TABLES@", tables)
    drops = "".join(f"DROP TABLE {p.storage_table}_unpartitioned CASCADE;\n" for p in products)
    analyze = "".join(f"ANALYZE {p.storage_table};\n" for p in products)
    return (head + "\n".join(convert_sql(p) for p in products) + "\n"
            + _TAIL.replace("@DROPS@", drops.rstrip("\n")).replace("@ANALYZE@",
                                                                    analyze.rstrip("\n")))


#: indexes 0025 drops from every partitioned family (``render.index_sql`` names): the time
#: GiST serves ``time_min``/``time_max`` conditions, the unique key (granule_uid first) the
#: lookups by granule_uid, and LIST partitioning the target; docs/scale.md, "Indexes"
REDUNDANT_INDEXES = ("time_min", "time_max", "target_name", "current")

_LEAN_HEAD = """-- GENERATED by `python -m epnml.schemas.render` from schemas/
-- (epnml.schemas.partitions); do not edit.
-- Issue #17 (docs/scale.md, "Indexes"): every index costs each ingested row its insertion.
-- Four of the eight per family serve nothing the others do not, once the tables are
-- partitioned:
--   time_min, time_max btrees: time conditions use the (time_min, time_max) GiST (0003);
--   target_name btree: constant inside a target's partitions (LIST pruning picks them);
--     kept on the DEFAULT partition, which holds the other targets;
--   current (granule_uid WHERE superseded_at IS NULL): the unique key starts with granule_uid.
-- Dropping an index of a partitioned table drops it on every partition. No row changes.
"""


def lean_indexes_sql() -> str:
    products = [p for p in PRODUCTS.values() if p.partitioning is not None]
    out = [_LEAN_HEAD]
    for product in products:
        f, table = product.family, product.storage_table
        schema = table.split(".")[0]
        drops = ", ".join(f"{schema}.{f}_{name}" for name in REDUNDANT_INDEXES)
        out.append(f"\n-- {f}\nDROP INDEX IF EXISTS {drops};\n"
                   f"CREATE INDEX {f}_default_target_name ON {table}__default (target_name);\n")
    return "".join(out)
