#!/usr/bin/env bash
# Runs careteam on the embedded PostgreSQL default: GraphQL at http://127.0.0.1:8000/graphql
# Extra arguments go to `careteam serve` (e.g. --port 8080 --data-dir ./var).
set -euo pipefail
cd "$(dirname "$0")/.."
source deploy/ensure-env.sh
exec uv run careteam serve "$@"
