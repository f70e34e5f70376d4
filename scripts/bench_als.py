#!/usr/bin/env python3
"""ALS (or BPR) training time, tailor vs implicit, side by side on the same data and machine.

Usage: python3 scripts/bench_als.py TRAIN.tsv [--model als|bpr] [--factors 64] [--iterations 15] [--repeat 3]
(for bpr, --iterations is the number of epochs: implicit's BPR `iterations`, tailor's `epochs`;
both with learning rate 0.05 and regularization 0.01, uniform negatives.)
TRAIN.tsv: `user item timestamp weight` (split.py / synth.py output). implicit (CPU, CG
solver, num_threads = cores, OPENBLAS_NUM_THREADS=1) fits the same user x item matrix
(weights summed over repeated pairs); tailor's time is `train_seconds` of
`tailor recommend --model als` (matrix already built, as implicit's fit). Prints one JSON
line per run. Needs: pip install implicit==0.7.2 scipy numpy.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402


def load(path):
    users, items, rows, cols, vals = {}, {}, [], [], []
    with open(path) as f:
        header = f.readline().rstrip("\n").split("\t")
        if header[0] != "user":
            f.seek(0)
        for line in f:
            p = line.rstrip("\n").split("\t")
            rows.append(users.setdefault(p[0], len(users)))
            cols.append(items.setdefault(p[1], len(items)))
            vals.append(float(p[3]) if len(p) > 3 else 1.0)
    m = sp.csr_matrix((np.array(vals, dtype=np.float32), (rows, cols)), shape=(len(users), len(items)))
    m.sum_duplicates()
    return m, next(iter(users))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("train")
    ap.add_argument("--model", choices=["als", "bpr"], default="als")
    ap.add_argument("--factors", type=int, default=64)
    ap.add_argument("--iterations", type=int, default=15)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--tailor", default=os.path.join(os.path.dirname(__file__), "../target/release/tailor"))
    a = ap.parse_args()
    import implicit
    from implicit.cpu.als import AlternatingLeastSquares
    threads = os.cpu_count()
    m, first_user = load(a.train)
    with tempfile.TemporaryDirectory() as t:
        users = os.path.join(t, "users.txt")
        with open(users, "w") as f:
            f.write(first_user + "\n")
        for r in range(a.repeat):
            if a.model == "als":
                model = AlternatingLeastSquares(factors=a.factors, iterations=a.iterations, regularization=0.01,
                                                alpha=1.0, use_cg=True, num_threads=threads, random_state=r)
                params = f"factors={a.factors},iterations={a.iterations},seed={r}"
            else:
                from implicit.cpu.bpr import BayesianPersonalizedRanking
                model = BayesianPersonalizedRanking(factors=a.factors, iterations=a.iterations, learning_rate=0.05,
                                                    regularization=0.01, num_threads=threads, random_state=r)
                params = f"factors={a.factors},epochs={a.iterations},learning_rate=0.05,regularization=0.01,seed={r}"
            s = time.perf_counter()
            model.fit(m, show_progress=False)
            took = time.perf_counter() - s
            print(json.dumps({"tool": "implicit", "model": a.model, "version": implicit.__version__, "run": r,
                              "fit_seconds": took,
                              "users": m.shape[0], "items": m.shape[1], "nnz": int(m.nnz), "threads": threads}))
            sys.stdout.flush()
            out = subprocess.run([a.tailor, "recommend", "--train", a.train, "--users", users, "--model", a.model,
                                  "--params", params,
                                  "--out", os.path.join(t, "recs.tsv")], check=True, capture_output=True, text=True)
            rep = json.loads(out.stdout)
            print(json.dumps({"tool": "tailor", "model": a.model, "run": r, "fit_seconds": rep["train_seconds"], "users": rep["train_users"],
                              "items": rep["train_items"], "nnz": rep["train_pairs"]}))
            sys.stdout.flush()


if __name__ == "__main__":
    main()
