#!/usr/bin/env bash
# The demo: start the offline sandbox API with the demo jobs, make a few imports
# through its POST endpoint and log each answer (scripts/demo_imports.py), load
# both and build the dbt models with `meltano run prism-to-duckdb` (tap-prism-imports
# target-duckdb dbt-duckdb:build), print a report from the models, and stop the
# sandbox (also when something fails).
#
# Run it with `make demo`, which first creates .venv, .venv-meltano and the
# Meltano plugins. Everything it writes goes to .demo/ (git-ignored): the
# warehouse (warehouse.duckdb), the import log (imports.jsonl), the sandbox's,
# Meltano's and dbt's logs, and a Meltano system database of its own, so the demo
# leaves your project's state alone.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD
venv=${VENV:-.venv}
meltano=${MELTANO:-.venv-meltano/bin/meltano}
duckdb_python=.meltano/loaders/target-duckdb/venv/bin/python
demo=.demo
api_key=prism-sandbox-demo-key  # the sandbox's DEMO_API_KEY

for need in "$venv/bin/prism-sandbox" "$venv/bin/python" "$meltano" "$duckdb_python"; do
    if [[ ! -x $need ]]; then
        echo "demo: $need is missing; run 'make demo' (it installs everything first)" >&2
        exit 1
    fi
done

mkdir -p "$demo"
rm -f "$demo"/port "$demo"/refs.txt "$demo"/imports.jsonl "$demo"/requests.jsonl \
    "$demo"/meltano.db "$demo"/warehouse.duckdb "$demo"/warehouse.duckdb.wal
rm -rf "$demo"/dbt-target "$demo"/dbt-logs

sandbox_pid=
stop_sandbox() {
    if [[ -n $sandbox_pid ]] && kill -0 "$sandbox_pid" 2>/dev/null; then
        kill -TERM "$sandbox_pid" 2>/dev/null || true
        wait "$sandbox_pid" 2>/dev/null || true
        echo "demo: sandbox stopped"
    fi
}
trap stop_sandbox EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

"$venv/bin/prism-sandbox" --port 0 --port-file "$demo/port" --seed demo \
    --refs-file "$demo/refs.txt" --request-log "$demo/requests.jsonl" \
    >"$demo/sandbox.log" 2>&1 &
sandbox_pid=$!

for _ in $(seq 150); do
    [[ -s $demo/port ]] && break
    if ! kill -0 "$sandbox_pid" 2>/dev/null; then
        echo "demo: the sandbox exited before it was ready:" >&2
        cat "$demo/sandbox.log" >&2
        exit 1
    fi
    sleep 0.2
done
if [[ ! -s $demo/port ]]; then
    echo "demo: the sandbox did not report its port within 30 s" >&2
    exit 1
fi
api_url="http://127.0.0.1:$(cat "$demo/port")"
echo "demo: sandbox at $api_url with $(grep -cv '^#' "$demo/refs.txt") demo jobs"
"$venv/bin/python" scripts/demo_imports.py --api-url "$api_url" --api-key "$api_key" \
    --import-log "$demo/imports.jsonl"

export MELTANO_SEND_ANONYMOUS_USAGE_STATS=false
export MELTANO_CLI_DISABLE_VERSION_CHECK=true
export MELTANO_DATABASE_URI="sqlite:///$root/$demo/meltano.db"
export TAP_PRISM_IMPORTS_API_URL=$api_url
export TAP_PRISM_IMPORTS_API_KEY=$api_key
export TAP_PRISM_IMPORTS_JOB_IDS_FILE=$root/$demo/refs.txt
export TAP_PRISM_IMPORTS_IMPORT_LOG=$root/$demo/imports.jsonl
export TARGET_DUCKDB_FILEPATH=$root/$demo/warehouse.duckdb
# dbt reads the loaded tables and writes its models in the same file; its own
# files stay in .demo/ too, not in transform/.
export DBT_DUCKDB_PATH=$root/$demo/warehouse.duckdb
export DBT_TARGET_PATH=$root/$demo/dbt-target
export DBT_LOG_PATH=$root/$demo/dbt-logs

echo "demo: meltano run prism-to-duckdb = tap-prism-imports target-duckdb dbt-duckdb:build (log: $demo/meltano.log)"
if ! "$meltano" run prism-to-duckdb >"$demo/meltano.log" 2>&1; then
    echo "demo: meltano run failed; the end of $demo/meltano.log:" >&2
    tail -n 40 "$demo/meltano.log" >&2
    exit 1
fi
grep -m 1 -o 'Run summary: .*' "$demo/meltano.log" | sed 's/^/demo: tap /' || true
grep -m 1 -o 'Done\. PASS=.*' "$demo/meltano.log" | sed 's/^/demo: dbt build: /' || true
echo

"$duckdb_python" scripts/demo_report.py --warehouse "$demo/warehouse.duckdb" \
    --api-url "$api_url" --api-key "$api_key" --refs-file "$demo/refs.txt" \
    --import-log "$demo/imports.jsonl"
