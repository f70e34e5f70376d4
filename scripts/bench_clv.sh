#!/usr/bin/env bash
# BG/NBD + Gamma-Gamma on CDNOW's 23,570 customers: tailor (`tailor --json report clv`, its
# `fit_seconds`: summaries and both fits, and the whole command's wall time with the store
# scan) beside the `lifetimes` package (summary_data_from_transaction_data and both fits),
# best of 5 each, same machine.
#
#   cargo build --release -p tailor-cli
#   PY=target/clv-venv/bin/python scripts/bench_clv.sh    # venv: see scripts/golden_clv.py
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/release/tailor}
DATA=${DATA:-../shared/data/cdnow/cdnow_master.csv}
PY=${PY:-target/clv-venv/bin/python}
RUNS=${RUNS:-5}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

"$BIN" --data-dir "$dir/data" import events "$DATA" --map user=customer_id,ts=date --set kind=purchase --set item=cd >/dev/null
best_fit=999
best_wall=999
for _ in $(seq "$RUNS"); do
  start=$(date +%s.%N)
  fit=$("$BIN" --data-dir "$dir/data" --json report clv --top 0 | python3 -c 'import json,sys; print(json.load(sys.stdin)["fit_seconds"])')
  wall=$(echo "$(date +%s.%N) - $start" | bc -l)
  best_fit=$(python3 -c "print(min($best_fit, $fit))")
  best_wall=$(python3 -c "print(min($best_wall, $wall))")
done
printf 'tailor     fit (summaries + BG/NBD + Gamma-Gamma) %.3f s   whole command (open, scan, fit, print) %.3f s\n' "$best_fit" "$best_wall"

if [ -x "$PY" ]; then
  "$PY" - "$DATA" "$RUNS" <<'EOF'
import sys, time, warnings
import pandas as pd
from lifetimes import BetaGeoFitter, GammaGammaFitter
from lifetimes.utils import summary_data_from_transaction_data
warnings.simplefilter("ignore")
m = pd.read_csv(sys.argv[1], parse_dates=["date"])
best = float("inf")
for _ in range(int(sys.argv[2])):
    t = time.perf_counter()
    s = summary_data_from_transaction_data(m, "customer_id", "date", monetary_value_col="amount",
                                           observation_period_end="1998-06-30", freq="D")
    BetaGeoFitter().fit(s["frequency"], s["recency"], s["T"])
    r = s[(s["frequency"] > 0) & (s["monetary_value"] > 0)]
    GammaGammaFitter().fit(r["frequency"], r["monetary_value"])
    best = min(best, time.perf_counter() - t)
print(f"lifetimes  fit (summary + BG/NBD + Gamma-Gamma)    {best:.3f} s")
EOF
else
  echo "lifetimes: not measured ($PY missing; see scripts/golden_clv.py)"
fi
