#!/usr/bin/env bash
# Sourced by deploy/serve.sh and deploy/test.sh: makes sure uv exists and the locked
# environment is installed, so both commands work on a fresh machine.
set -euo pipefail
if ! command -v uv >/dev/null 2>&1; then
    export PATH="$HOME/.local/bin:$PATH"
fi
if ! command -v uv >/dev/null 2>&1; then
    echo "careteam: installing uv (the project's package manager) from PyPI" >&2
    python3 -m pip install --quiet --user "uv>=0.5" || python3 -m pip install --quiet "uv>=0.5"
    export PATH="$HOME/.local/bin:$PATH"
fi
uv sync --frozen --quiet
