#!/usr/bin/env bash
# Container roles, all through service/provision.sh:
#   stack  PostgreSQL+pgSphere and DaCHS (EPNML_PG_LISTEN=* lets ml containers connect)
#   demo   stack + the simulated demo ingest
#   ml     run an epnml command against the stack's database (EPNML_DSN)
set -euo pipefail
cd /opt/epnml
role=${1:-stack}; shift || true
case $role in
    stack|demo)
        bash service/provision.sh stack
        [ "$role" = demo ] && bash service/provision.sh demo
        exec tail -F /var/gavo/logs/dcErrors /var/log/postgresql/postgresql-15-main.log ;;
    ml)
        exec .venv/bin/epnml "$@" ;;
    *)
        echo "usage: stack | demo | ml EPNML-ARGS..." >&2; exit 2 ;;
esac
