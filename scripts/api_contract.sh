#!/usr/bin/env bash
# The API contract, checked by tools we did not write, against a keyed `tailor serve` of a
# small demo shop: Schemathesis fuzzes every route from the server's own OpenAPI document
# with every check on, then `promtool check metrics` reads /metrics.
#
#   scripts/api_contract.sh [TAILOR_BINARY] [st options...]   (default: target/debug/tailor)
#
# Needs `st` (PyPI schemathesis; .ci/run installs it into target/ci-venv) and `promtool`
# (Debian prometheus). Exits non-zero on any failure. The deliberate exclusions, each with
# its reason, are the hooks in scripts/schemathesis_hooks.py.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-target/debug/tailor}
shift || true
st=${ST:-$(command -v st || echo target/ci-venv/bin/st)}
work=$(mktemp -d /tmp/tailor-schemathesis.XXXXXX)
port=${PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')}
key="schemathesis-admin-key-0123456789"
cat > "$work/tailor.toml" <<TOML
[store]
data_dir = "$work/data"
[serve]
addr = "127.0.0.1:$port"
als_params = "factors=8,iterations=3"
[[serve.api_keys]]
name = "fuzzer"
key = "$key"
scopes = ["admin"]
TOML
"$bin" --config "$work/tailor.toml" demo --users 300 --items 150 --days 14 --no-serve > "$work/demo.log" 2>&1
"$bin" --config "$work/tailor.toml" --log-format json serve > "$work/serve.log" 2>&1 &
server=$!
stop() { kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; }
trap stop EXIT
for _ in $(seq 600); do
  curl -sf "http://127.0.0.1:$port/readyz" > /dev/null && break
  sleep 0.1
done
status=0
# The deliberate exclusions (rules JSON Schema cannot state) are the hooks, each with its
# reason: scripts/schemathesis_hooks.py.
PYTHONPATH="$PWD/scripts${PYTHONPATH:+:$PYTHONPATH}" SCHEMATHESIS_HOOKS=schemathesis_hooks "$st" run "http://127.0.0.1:$port/openapi.json" \
  --url "http://127.0.0.1:$port" \
  -H "Authorization: Bearer $key" \
  --checks all \
  --max-examples "${MAX_EXAMPLES:-30}" \
  --workers 2 \
  --seed 1 \
  "$@" || status=$?
if [ "$status" != 0 ]; then
  # Which routes answered slowly (a response-time failure names only the request that waited).
  curl -sf -H "Authorization: Bearer $key" "http://127.0.0.1:$port/metrics" |
    awk -F'[{}]' '/^tailor_http_request_duration_seconds_bucket/ && /le="1"/ {split($0, a, " "); le1[$2] = a[2]}
      /^tailor_http_request_duration_seconds_count/ {split($0, a, " "); n[$2] = a[2]}
      END {for (k in le1) {r = k; sub(/,le="1"/, "", r); if (n[r] - le1[k] > 0) print "slower than 1 s:", n[r] - le1[k], "of", n[r], r}}' >&2 || true
  echo "schemathesis failed; server log: $work/serve.log" >&2
  exit "$status"
fi
# Traffic for every metric family, then the exposition format and HELP texts.
curl -sf -H "Authorization: Bearer $key" "http://127.0.0.1:$port/v1/users/U00001/recommendations?slot=home" > /dev/null
curl -sf -H "Authorization: Bearer $key" "http://127.0.0.1:$port/metrics" > "$work/metrics.txt"
promtool check metrics < "$work/metrics.txt"
echo "promtool check metrics: ok ($(grep -c '^# HELP' "$work/metrics.txt") metric families with HELP)"
# The shipped alerting rules (issue #19) parse and name metrics the server exports.
promtool check rules deploy/prometheus/alerts.yml
for m in $(grep -oE 'tailor_[a-z_]+' deploy/prometheus/alerts.yml | sed -E 's/_(bucket|count)$//' | sort -u); do
  grep -q "\"$m\"" crates/tailor-server/src/lib.rs || { echo "error: deploy/prometheus/alerts.yml names $m, which the server does not describe" >&2; exit 1; }
done
echo "promtool check rules: ok"
