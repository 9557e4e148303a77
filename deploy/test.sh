#!/usr/bin/env bash
# Runs every test: installs the locked environment, starts a real Kafka broker
# (deploy/kafka), runs lint, type checks and pytest against real PostgreSQL and Kafka,
# then stops the broker. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
source deploy/ensure-env.sh
bash deploy/ensure-chromium.sh

export CARETEAM_KAFKA_BOOTSTRAP_SERVERS="${CARETEAM_KAFKA_BOOTSTRAP_SERVERS:-127.0.0.1:9092}"
started_kafka=0
# A private temporary folder per run: pytest's shared numbered folders
# (/tmp/pytest-of-USER/pytest-N) are pruned by any other pytest run of the same user,
# which would delete a running test's embedded PostgreSQL data.
basetemp="$(mktemp -d "${TMPDIR:-/tmp}/careteam-pytest.XXXXXX")"
if [ "${CARETEAM_KAFKA_EXTERNAL:-0}" != "1" ]; then
    bash deploy/kafka/kafka.sh start
    started_kafka=1
fi
cleanup() {
    rm -rf "$basetemp"
    if [ "$started_kafka" = 1 ]; then bash deploy/kafka/kafka.sh stop || true; fi
}
trap cleanup EXIT

uv run ruff check .
uv run ruff format --check .
uv run mypy
uv run lint-imports
# Test files run in parallel worker processes (pytest-xdist), a whole file per worker so
# a file's module fixtures are built once; each worker has its own PostgreSQL server.
# CARETEAM_TEST_WORKERS=0 runs them in this process, one after another.
uv run pytest --basetemp "$basetemp" -n "${CARETEAM_TEST_WORKERS:-2}" --dist loadfile --no-loadscope-reorder "$@"
