# Sourced by the other .ci scripts: picks the Python that pallet is installed into.
# A project venv (.ci/install makes one where the system Python refuses pip installs,
# PEP 668) wins; otherwise the first python3 on PATH.
PALLET_REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ -x "$PALLET_REPO/.venv/bin/python" ]; then
    PY="$PALLET_REPO/.venv/bin/python"
else
    PY="$(command -v python3)"
fi
# The console scripts (pallet, palletd, pallet-shim) sit beside the interpreter.
PALLET_BIN="$(dirname "$("$PY" -c 'import sys; print(sys.executable)')")"
export PATH="$PALLET_BIN:$PATH"
