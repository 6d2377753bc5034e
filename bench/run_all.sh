#!/usr/bin/env bash
# Run every benchmark with the goal settings; results land in bench/results/*.json.
# Needs PostgreSQL on 127.0.0.1:5432 (user postgres) and Redis on 127.0.0.1:6379 (db 12 is
# flushed). Takes ~35 minutes with SUSTAIN_MINUTES=3 (the default), ~42 with 10.
#   bench/run_all.sh                    # SUSTAIN_MINUTES=10 bench/run_all.sh
# BENCH_SNAPSHOT=1 runs everything from a clean copy of HEAD (bench/snapshot.sh), for when
# others are editing the working tree meanwhile; results still land in this bench/results.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ "${BENCH_SNAPSHOT:-0}" == 1 && -z "${BENCH_IN_SNAPSHOT:-}" ]]; then
    dest="$(bench/snapshot.sh)"
    export BENCH_IN_SNAPSHOT=1 BENCH_RESULTS_DIR="$PWD/bench/results"
    export PYTHON="${PYTHON:-$PWD/.venv/bin/python}"
    exec "$dest/bench/run_all.sh"
fi
PY="${PYTHON:-.venv/bin/python}"
SUSTAIN_MINUTES="${SUSTAIN_MINUTES:-3}"
export PATH="$(dirname "$PY"):$PATH"   # py-spy, if installed into .venv

"$PY" -m bench.sql_roundtrip
# Goal 1: 10,000 deliveries, 1 subscription; then 3,000 events x 3 subscriptions.
"$PY" -m bench.delivery_throughput --deliveries 10000 --subscriptions 1 --profile
"$PY" -m bench.delivery_throughput --deliveries 9000 --subscriptions 3 \
    --name delivery_throughput_fanout3
# Goal 2: wrk -t2 -c50 -d15s, 3 matching subscriptions, workers stopped; then with 2 workers.
"$PY" -m bench.publish_throughput --profile
"$PY" -m bench.publish_throughput --workers 2 --repeat 1 --name publish_throughput_workers2
# Goals 3 and 4 at the goal rates (200/s and 100/s), then above and below them.
"$PY" -m bench.latency all
for rate in 400 800; do
    "$PY" -m bench.latency e2e --rate "$rate" --name "latency_e2e_r$rate"
done
"$PY" -m bench.latency hang --hang-rate 10 --repeat 1 --name latency_hang_r10
# Writes per publish / per delivery by peer (needs strace; skipped without it).
if command -v strace >/dev/null; then
    "$PY" -m bench.roundtrips --subscriptions 1 --name roundtrips_s1
    "$PY" -m bench.roundtrips --subscriptions 3 --name roundtrips_s3
fi
# Goal 5: RSS under sustained load (sampled every 10 s).
"$PY" -m bench.memory --sustain-minutes "$SUSTAIN_MINUTES" --rate 100
echo "done: see bench/results/*-latest.json; summarise into docs/performance.md"
