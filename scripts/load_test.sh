#!/usr/bin/env bash
# Load test of `tailor serve` on the default demo shop, on loopback, with wrk beside it.
#   scripts/load_test.sh [SECONDS] [EVENT_SECONDS]      (ONLY=<run name> for one run, MODEL=als for one model)
# Prints one JSON line per run: recommendations with the cache off and on, then POST
# /v1/events in batches of 100 (durable). CPU of the server process is sampled from
# /proc for each run, and its RSS at the end. Needs `wrk` (Debian: apt-get install wrk) and a release build.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-20}
EVSECS=${2:-60}
BIN=${BIN:-target/release/tailor}
PORT=${PORT:-18080}
DATA=$(mktemp -d /tmp/tailor-load.XXXXXX)
trap 'kill ${SERVER:-} 2>/dev/null || true; rm -rf "$DATA"' EXIT
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
[ -x "$BIN" ] || cargo build --release -q -p tailor-cli
"$BIN" --data-dir "$DATA" demo --no-serve --json >/dev/null
"$BIN" --data-dir "$DATA" --conf segment.top_categories=8 segment run --method rules --rules examples/demo-rules.toml --json >/dev/null
# MODEL=als (or any servable model) retrains the demo's version with that model instead of auto's choice.
if [ -n "${MODEL:-}" ]; then "$BIN" --data-dir "$DATA" --conf serve.model="$MODEL" --conf serve.promote_tolerance=1 train >/dev/null; fi

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
run() { # name, cache ttl, command args... (wrk, or python3 for the freshness check)
  local name=$1 ttl=$2; shift 2
  if [ -n "${ONLY:-}" ] && [ "$ONLY" != "$name" ]; then return; fi
  "$BIN" --data-dir "$DATA" --log-format json --conf log.filter=warn --conf serve.addr=127.0.0.1:$PORT \
    --conf serve.cache_ttl_seconds=$ttl serve >/dev/null 2>"$DATA/server.log" &
  SERVER=$!
  for _ in $(seq 200); do curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
  local t0 c0 out t1 c1
  local swapper=""
  if [ "$name" = recommendations_during_hot_swaps ]; then
    # Retrain, promote and swap the model back to back while the load runs; count the swaps.
    ( n=0; while sleep 0.5; do curl -sf -X POST "http://127.0.0.1:$PORT/v1/admin/retrain" | grep -q "\"promoted\":true" && n=$((n+1)) && echo $n > "$DATA/swaps"; done ) &
    swapper=$!
  fi
  t0=$(date +%s.%N); c0=$(cpu_ticks $SERVER)
  if [ "$1" = python3 ]; then out=$("$@" "$PORT" | tail -1); else out=$("$@" "http://127.0.0.1:$PORT" | tail -1); fi
  t1=$(date +%s.%N); c1=$(cpu_ticks $SERVER)
  if [ -n "$swapper" ]; then kill $swapper; out="{\"swaps\": $(cat "$DATA/swaps" 2>/dev/null || echo 0), \"wrk\": $out}"; fi
  local cpu
  cpu=$(python3 -c "print(round(($c1 - $c0) / $(getconf CLK_TCK) / ($t1 - $t0), 2))")
  local rss
  rss=$(awk '/^VmRSS:/ {print int($2 / 1024)}' "/proc/$SERVER/status")
  echo "{\"run\": \"$name\", \"server_cpu_cores\": $cpu, \"server_rss_mb\": $rss, \"result\": $out}"
  kill -TERM $SERVER; wait $SERVER 2>/dev/null || true
}
run event_to_recommendation 60 python3 scripts/load/freshness.py
run new_item_to_similar 60 python3 scripts/load/new_item.py
run recommendations_cache_off 0 wrk -t${WRK_T:-1} -c16 -d${SECS}s --latency -s scripts/load/recs.lua
run recommendations_cache_on 60 wrk -t${WRK_T:-1} -c16 -d${SECS}s --latency -s scripts/load/recs.lua
run recommendations_during_hot_swaps 0 wrk -t${WRK_T:-1} -c16 -d${SECS}s --latency -s scripts/load/recs.lua
# The same with every request in an A/B test (variant applied, rec_id tagged, exposure logged):
# the demo's running one on slot home, or EXPERIMENT (a spec file) created and started.
if [ -n "${EXPERIMENT:-}" ]; then "$BIN" --data-dir "$DATA" experiment create "$EXPERIMENT" --start >/dev/null; fi
SLOT=home run recommendations_in_experiment 0 wrk -t${WRK_T:-1} -c16 -d${SECS}s --latency -s scripts/load/recs.lua
run events_batch_100 0 wrk -t${WRK_T:-1} -c32 -d${EVSECS}s -s scripts/load/events.lua
# Every event names an item the catalog has never seen (issue 18, item 5), one per request
# as the probe sent them, then in batches of 100.
NEW_ITEMS=1 BATCH=1 run events_new_item_each 0 wrk -t${WRK_T:-1} -c16 -d${SECS}s --latency -s scripts/load/events.lua
NEW_ITEMS=1 run events_new_items_batch_100 0 wrk -t${WRK_T:-1} -c32 -d${SECS}s --latency -s scripts/load/events.lua
