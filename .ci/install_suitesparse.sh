#!/usr/bin/env bash
# Install CHOLMOD for adelia's general sparse path (adelia.runtime.sparse):
#   Debian 12: libsuitesparse-dev (SuiteSparse 5.12) + libopenblas0-pthread (without it CHOLMOD
#   runs on reference BLAS), then scikit-sparse 0.4.16 built from source against them
#   (0.5.x does not build against SuiteSparse 5.12; see shared/design/ECOSYSTEM.md §6.3).
#
# Usage: bash .ci/install_suitesparse.sh [PYTHON]      (default: python3; e.g. .venv/bin/python)
# Idempotent: returns at once when scikit-sparse's CHOLMOD already imports in PYTHON.
# Needs root (or sudo) for apt-get, a C compiler and the package registries (Debian, PyPI).
set -euo pipefail
PY="${1:-python3}"

if "$PY" -c "import sksparse.cholmod" >/dev/null 2>&1; then
    echo "install_suitesparse: scikit-sparse (CHOLMOD) already available in $PY"
    exit 0
fi

PKGS="libsuitesparse-dev libopenblas0-pthread gcc"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    SUDO=""
    if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
    export DEBIAN_FRONTEND=noninteractive
    echo "install_suitesparse: apt-get install$missing"
    if ! $SUDO apt-get install -y -q --no-install-recommends $missing >/dev/null; then
        $SUDO apt-get update -q >/dev/null
        $SUDO apt-get install -y -q --no-install-recommends $missing >/dev/null
    fi
fi

echo "install_suitesparse: pip install scikit-sparse==0.4.16 (builds against the system SuiteSparse)"
"$PY" -m pip install -q "scikit-sparse==0.4.16"
"$PY" -c "import sksparse.cholmod; print('install_suitesparse: CHOLMOD OK')"
