#!/usr/bin/env bash
# Idempotent setup for bench/chat: Bun (from the npm package `bun`, which ships the binary) and `ws`
# into bench/chat/node_modules, and the Python peers into the project's venv.
# Usage: bash bench/chat/setup.sh            (re-running it is cheap once everything is there)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"
PY="$VENV/bin/python"

log() { printf '[bench/chat setup] %s\n' "$*" >&2; }

# --- JavaScript side -------------------------------------------------------------------------
if ! command -v npm >/dev/null 2>&1; then
    log "npm not found: cannot install bun/ws (the runner will skip the bun server and needs node+ws or bun for the client)"
else
    if [ -x "$HERE/node_modules/.bin/bun" ] && "$HERE/node_modules/.bin/bun" --version >/dev/null 2>&1 \
        && [ -f "$HERE/node_modules/ws/package.json" ]; then
        log "bun $("$HERE/node_modules/.bin/bun" --version) and ws already installed"
    else
        log "npm install (bun, ws) into $HERE/node_modules"
        (cd "$HERE" && timeout 600 npm install --no-audit --no-fund --no-package-lock --loglevel=error)
        # The `bun` package places the binary from its platform package (@oven/bun-<os>-<arch>) in a
        # postinstall step; if scripts were not run, run it by hand.
        if ! "$HERE/node_modules/.bin/bun" --version >/dev/null 2>&1 && [ -f "$HERE/node_modules/bun/install.js" ]; then
            log "running bun's postinstall by hand"
            (cd "$HERE/node_modules/bun" && node install.js) || true
        fi
        if "$HERE/node_modules/.bin/bun" --version >/dev/null 2>&1; then
            log "bun $("$HERE/node_modules/.bin/bun" --version) installed"
        else
            log "bun did not install; the runner will fall back to node+ws for the client and skip the bun server"
        fi
    fi
fi

# --- Python peers ----------------------------------------------------------------------------
if [ ! -x "$PY" ]; then
    log "no venv at $VENV (set VENV=...)"; exit 1
fi
if "$PY" -c 'import picows, aiohttp, websockets, uvloop' >/dev/null 2>&1; then
    log "python peers already installed: $("$PY" -c 'import picows, aiohttp, websockets, uvloop; print("picows", picows.__version__ if hasattr(picows, "__version__") else "?", "aiohttp", aiohttp.__version__, "websockets", websockets.__version__, "uvloop", uvloop.__version__)')"
else
    log "pip install picows aiohttp websockets uvloop into $VENV"
    timeout 600 "$PY" -m pip install --quiet --disable-pip-version-check picows aiohttp websockets uvloop
fi
command -v taskset >/dev/null 2>&1 || log "taskset not found (util-linux): the runner will run unpinned"
log "done"
