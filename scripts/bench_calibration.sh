#!/usr/bin/env bash
# Calibrated re-ranking (Steck 2018) on ml-100k with its genres: NDCG@10 and miscalibration
# (mean KL of the list's genres to the history's) for λ in {0, 0.25, 0.5, 0.75, 0.99}, on
# the benchmark's temporal split (../shared/bench/split.py).
#
#   cargo build --release -p tailor-cli && scripts/bench_calibration.sh [MODELS]
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/release/tailor}
SHARED=${SHARED:-../shared}
MODELS=${1:-als,ease}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
"${PY:-python3}" "$SHARED/bench/split.py" --format ml100k --in "$SHARED/data/ml-100k/u.data" --out "$T" >/dev/null
# u.item: id|title|date|video date|url|19 genre flags, in u.genre's order (latin-1 titles,
# hence LC_ALL=C).
LC_ALL=C awk -F'|' 'NR == FNR { if ($0 != "") g[$2] = $1; next }
  { s = ""; for (k = 0; k < 19; k++) if ($(6 + k) == "1") s = s (s == "" ? "" : "|") g[k]; print $1 "\t" s }' \
  "$SHARED/data/ml-100k/u.genre" "$SHARED/data/ml-100k/u.item" > "$T/genres.tsv"
"$BIN" eval --train "$T/train.tsv" --test "$T/test.tsv" --models "$MODELS" --genres "$T/genres.tsv" \
  --calibration 0,0.25,0.5,0.75,0.99 ${OUT:+--out "$OUT"}
