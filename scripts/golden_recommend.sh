#!/usr/bin/env bash
# Reference NDCG etc. of tailor's models on ml-100k, computed by the neutral yardstick
# (../shared/bench/split.py + evaluate.py, numpy only) from `tailor recommend` output.
# Writes crates/tailor-eval/tests/golden/ml100k.json; the slow test
# `ml100k_metrics_equal_the_yardstick` recomputes split, models and metrics in Rust and
# must find the same values (so quality regressions fail CI).
# Run from the repository root after `cargo build --release`.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SHARED=${SHARED:-$ROOT/../shared}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
B=$ROOT/target/release/tailor
split=$(python3 "$SHARED/bench/split.py" --format ml100k --in "$SHARED/data/ml-100k/u.data" --out "$T/std")
cut -f1 "$T/std/test.tsv" | tail -n +2 | sort -u > "$T/users.txt"
models=("popular|" "itemknn|" "ease|lambda=800,recency=5" "ease|lambda=400" "als|")
{
  echo "{\"_header\": {\"script\": \"scripts/golden_recommend.sh\", \"numpy\": \"$(python3 -c 'import numpy; print(numpy.__version__)')\"},"
  echo " \"split\": $split,"
  echo " \"runs\": ["
  first=1
  for m in "${models[@]}"; do
    name=${m%%|*}; params=${m#*|}
    $B recommend --train "$T/std/train.tsv" --users "$T/users.txt" --model "$name" ${params:+--params "$params"} --out "$T/recs.tsv" > /dev/null
    metrics=$(python3 "$SHARED/bench/evaluate.py" --train "$T/std/train.tsv" --test "$T/std/test.tsv" --recs "$T/recs.tsv" --k 10)
    [ $first = 1 ] || echo ","
    first=0
    echo "  {\"model\": \"$name\", \"params\": \"$params\", \"metrics\": $metrics}"
  done
  echo " ]}"
} > "$ROOT/crates/tailor-eval/tests/golden/ml100k.json"
python3 -m json.tool "$ROOT/crates/tailor-eval/tests/golden/ml100k.json" > /dev/null
echo "wrote crates/tailor-eval/tests/golden/ml100k.json"
