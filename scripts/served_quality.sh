#!/usr/bin/env bash
# Served quality equals offline quality (issue #14): the benchmark's temporal split of a
# dataset is loaded into a fresh store, `tailor train` picks and fits the model
# (serve.model=auto unless MODEL is set), `tailor serve` answers
# GET /v1/users/{id}/recommendations?k=10 for every test user over HTTP, and the neutral
# yardstick (../shared/bench/evaluate.py) scores the served lists. The same model is then
# fitted offline by `tailor recommend` and scored the same way, for comparison.
#
#   scripts/served_quality.sh                 # ml-100k
#   DATASET=online-retail scripts/served_quality.sh
#   MODEL=als scripts/served_quality.sh       # one model instead of auto
#   CONF="serve.model_params=ease.lambda=800" scripts/served_quality.sh
#
# Needs a release build (`cargo build --release`) and python3 with numpy.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SHARED=${SHARED:-$ROOT/../shared}
B=${TAILOR:-$ROOT/target/release/tailor}
DATASET=${DATASET:-ml-100k}
MODEL=${MODEL:-auto}
PORT=${PORT:-18471}
T=$(mktemp -d)
SERVER=
trap '[ -n "${SERVER:-}" ] && kill "$SERVER" 2>/dev/null; rm -rf "$T"' EXIT

case "$DATASET" in
  ml-100k) python3 "$SHARED/bench/split.py" --format ml100k --in "$SHARED/data/ml-100k/u.data" --out "$T/std" > "$T/split.json" ;;
  online-retail)
    python3 "$SHARED/bench/split.py" --in "$SHARED/data/online-retail/online_retail.csv.gz" \
      --columns user=CustomerID,item=StockCode,timestamp=InvoiceDate,weight=Quantity --out "$T/std" > "$T/split.json" ;;
  *) echo "DATASET: ml-100k or online-retail" >&2; exit 2 ;;
esac
tail -n +2 "$T/std/test.tsv" | cut -f1 | sort -u > "$T/users.txt"

# Train rows as rating events whose value is the row's weight (what `tailor recommend`
# reads as confidence); no history cap below any user's row count.
conf=(--data-dir "$T/data" --conf serve.model="$MODEL" --conf serve.history_per_user=100000
      --conf "serve.addr=127.0.0.1:$PORT")
for c in ${CONF:-}; do conf+=(--conf "$c"); done
"$B" "${conf[@]}" --json import events "$T/std/train.tsv" \
  --map user=user,item=item,ts=timestamp,rating=weight --set kind=rating > "$T/import.json"
start=$(date +%s.%N)
"$B" "${conf[@]}" --json train > "$T/train.json"
train_s=$(python3 -c "import sys; print(round($(date +%s.%N) - $start, 1))")
chosen=$(python3 -c "import json; d=json.load(open('$T/train.json')); print(d.get('model') or d['candidate']['model'])")

"$B" "${conf[@]}" serve > "$T/serve.log" 2>&1 &
SERVER=$!
for _ in $(seq 1 600); do
  curl -fsS "http://127.0.0.1:$PORT/healthz" > /dev/null 2>&1 && break
  sleep 0.1
done

python3 - "$T/users.txt" "$T/served.tsv" "$PORT" <<'PY'
import json, sys, time, urllib.parse, urllib.request
users, out, port = sys.argv[1], sys.argv[2], sys.argv[3]
lat = []
with open(users) as f, open(out, "w") as w:
    w.write("user\titem\trank\n")
    for u in (l.strip() for l in f if l.strip()):
        t = time.perf_counter()
        url = f"http://127.0.0.1:{port}/v1/users/{urllib.parse.quote(u, safe='')}/recommendations?k=10"
        body = json.load(urllib.request.urlopen(url))
        lat.append(time.perf_counter() - t)
        for r, it in enumerate(body["items"], 1):
            w.write(f"{u}\t{it['id']}\t{r}\n")
lat.sort()
print(json.dumps({"requests": len(lat), "p50_ms": round(lat[len(lat) // 2] * 1e3, 2)}))
PY
served=$(python3 "$SHARED/bench/evaluate.py" --train "$T/std/train.tsv" --test "$T/std/test.tsv" --recs "$T/served.tsv" --k 10)

# The same model offline, with the parameters and recency the training chose.
read -r params recency < <(python3 - "$T/train.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
info = d.get("candidate", d)
c = [c for c in info.get("candidates", []) if c.get("chosen")]
c = c[0] if c else {"params": "", "recency_half_life": None}
print(c["params"] or "-", c.get("recency_half_life") or "-")
PY
)
spec=""
[ "$params" != "-" ] && spec=$params
[ "$recency" != "-" ] && spec=${spec:+$spec,}recency=$recency
"$B" recommend --train "$T/std/train.tsv" --users "$T/users.txt" --model "$chosen" ${spec:+--params "$spec"} \
  --out "$T/offline.tsv" > /dev/null
offline=$(python3 "$SHARED/bench/evaluate.py" --train "$T/std/train.tsv" --test "$T/std/test.tsv" --recs "$T/offline.tsv" --k 10)

python3 - "$T/train.json" "$served" "$offline" "$chosen" "$spec" "$train_s" "$DATASET" <<'PY'
import json, sys
train = json.load(open(sys.argv[1]))
info = train.get("candidate", train)
served, offline = json.loads(sys.argv[2]), json.loads(sys.argv[3])
print(f"dataset {sys.argv[7]}: served model {sys.argv[4]} ({sys.argv[5] or 'defaults'}), training {sys.argv[6]} s")
print(f"{'candidate':<10} {'holdout NDCG@10':>16} {'recall':>7} {'fit s':>6} {'recency':>8} {'trials':>7}  params")
for c in info.get("candidates", []):
    h = c.get("holdout") or {}
    mark = " *" if c.get("chosen") else ""
    print(f"{c['model']:<10} {h.get('ndcg', float('nan')):>16.4f} {h.get('recall', float('nan')):>7.4f} "
          f"{c['fit_seconds']:>6.2f} {str(c.get('recency_half_life') or '-'):>8} {c.get('trials', 1):>7}  {c['params'] or '-'}{mark}")
print(f"served over HTTP: NDCG@10 {served['ndcg']:.4f}  recall {served['recall']:.4f}  users {served['n_users']}  "
      f"without recs {served['users_without_recs']}  train leaks {served['train_leaks']}")
print(f"offline (tailor recommend): NDCG@10 {offline['ndcg']:.4f}  recall {offline['recall']:.4f}")
print(f"difference: {served['ndcg'] - offline['ndcg']:+.4f}")
PY
