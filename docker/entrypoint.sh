#!/usr/bin/env bash
# Container roles, all through service/provision.sh:
#   stack  PostgreSQL+pgSphere, DaCHS and the re-inference/DataLink service (epnml serve)
#          (EPNML_PG_LISTEN=* lets ml containers connect)
#   demo   stack + the demo ingest
#   ml     run an epnml command against the stack's database (the ingest role's DSN file
#          in the shared gavo volume, EPNML_DSN_FILE)
set -euo pipefail
cd /opt/epnml
role=${1:-stack}; shift || true
case $role in
    stack|demo)
        bash service/provision.sh stack
        if [ "$role" = demo ]; then bash service/provision.sh demo; fi
        bash service/provision.sh api
        exec tail -F /var/gavo/logs/dcErrors /var/gavo/logs/epnml-api.log \
            /var/log/postgresql/postgresql-15-main.log ;;
    ml)
        exec .venv/bin/epnml "$@" ;;
    *)
        echo "usage: stack | demo | ml EPNML-ARGS..." >&2; exit 2 ;;
esac
