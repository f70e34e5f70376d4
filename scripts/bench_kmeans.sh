#!/usr/bin/env bash
# k-means on 1,000,000 x 16 blobs (shared/bench/synth.py, seed 0), k = 8, scikit-learn's
# defaults (k-means++, n_init='auto' = 1, tol = 1e-4, max_iter = 300), tailor and
# scikit-learn alternating in one run, 5 seeds each. Needs: pip install scikit-learn numpy threadpoolctl.
# DATA=overlap: the hard case instead (issue #21): the same mixture with centres uniform in
# [-1.5, 1.5]^16 (unit noise), where Lloyd needs tens of iterations, seeds 0-2.
# Usage: [DATA=overlap] scripts/bench_kmeans.sh [path/to/tailor]
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
tailor=${1:-$here/target/release/tailor}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
seeds="0 1 2 3 4"
if [ "${DATA:-}" = overlap ]; then
  seeds="0 1 2"
  python3 - "$work/blobs.npy" <<'PY'
import sys
import numpy as np
rng = np.random.default_rng(0)
centres = rng.uniform(-1.5, 1.5, (8, 16))
labels = rng.integers(0, 8, 1_000_000)
np.save(sys.argv[1], centres[labels] + rng.standard_normal((1_000_000, 16)))
PY
else
  python3 "$here/../shared/bench/synth.py" blobs --n 1000000 --dim 16 --k 8 --seed 0 --out "$work/blobs.npy" >/dev/null
fi
cat > "$work/sk.py" <<'PY'
import json, sys, time
import numpy as np
from sklearn.cluster import KMeans
from threadpoolctl import threadpool_info
X = np.load(sys.argv[1]); seed = int(sys.argv[2])
t = time.perf_counter()
km = KMeans(n_clusters=8, random_state=seed).fit(X)
print(json.dumps({"tool": "sklearn", "seed": seed, "fit_seconds": time.perf_counter() - t, "inertia": km.inertia_,
                  "iterations": int(km.n_iter_), "threads": [i.get("num_threads") for i in threadpool_info()]}))
PY
for seed in $seeds; do
  # Unset only for this comparison: these variables slow a current numpy (see env docs).
  env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python3 "$work/sk.py" "$work/blobs.npy" "$seed"
  "$tailor" cluster --input "$work/blobs.npy" --k 8 --seed "$seed" --no-silhouette --json \
    | python3 -c 'import json,sys; d=json.load(sys.stdin); print(json.dumps({"tool":"tailor","seed":'"$seed"',"fit_seconds":d["fit_seconds"],"inertia":d["inertia"],"iterations":d["iterations"]}))'
done
