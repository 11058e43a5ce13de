#!/usr/bin/env bash
# Ingest the demo (ingest/demo.sh) into a fresh migrated database with one checkout's code,
# so two checkouts' rows can be compared with demo_rows_compare.py (docs/layout.md).
#
#   bash tests/tools/demo_rows.sh NAME VENV CHECKOUT [INPUTS]
#
# NAME: database demo_rows_NAME (dropped and recreated); VENV: the virtualenv whose epnml
# runs; CHECKOUT: its repository (sql/ migrations); INPUTS: where demo inputs are generated
# once and reused (default /var/tmp/demo-rows-inputs) so both runs read the same files.
# Root only; a role demo_rows_NAME_owner with a generated password, written to
# /var/tmp/demo-rows-dsn-NAME (mode 600).
set -euo pipefail
NAME=$1 VENV=$2 CHECKOUT=$3 INPUTS=${4:-/var/tmp/demo-rows-inputs}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DB=demo_rows_$NAME
PW=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
runuser -u postgres -- psql -q -v ON_ERROR_STOP=1 <<SQL
SET client_min_messages = warning;
DROP DATABASE IF EXISTS $DB WITH (FORCE);
DO \$\$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'demo_rows_${NAME}_owner')
THEN CREATE ROLE demo_rows_${NAME}_owner LOGIN; END IF; END \$\$;
ALTER ROLE demo_rows_${NAME}_owner PASSWORD '$PW';
CREATE DATABASE $DB OWNER demo_rows_${NAME}_owner;
SQL
runuser -u postgres -- psql -q -d "$DB" -c "SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_sphere; CREATE EXTENSION IF NOT EXISTS btree_gist;
CREATE SCHEMA IF NOT EXISTS epnml AUTHORIZATION demo_rows_${NAME}_owner;"
export EPNML_DSN="host=localhost dbname=$DB user=demo_rows_${NAME}_owner password=$PW"
( umask 077; echo "$EPNML_DSN" > "/var/tmp/demo-rows-dsn-$NAME" )
export EPNML_DATA_DIR=/var/tmp/demo-rows-static-$NAME
rm -rf "$EPNML_DATA_DIR"
cd "$CHECKOUT"
"$VENV/bin/epnml" db migrate
EPNML_VENV=$VENV bash "$HERE/../../ingest/demo.sh" "$INPUTS"
