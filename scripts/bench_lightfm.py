#!/usr/bin/env python3
"""LightFM vs tailor on ml-100k, warm (temporal) and cold-item splits, side by side.

Usage: python3 scripts/bench_lightfm.py [--epochs 30] [--components 64] [--seeds 3]
Run from the repository root after `cargo build --release`. Needs lightfm 1.17 (its sdist
needs `pip install wheel` and, in setup.py, `import builtins; builtins.__LIGHTFM_SETUP__ = True`
instead of `__builtins__.__LIGHTFM_SETUP__ = True` on Python 3.11, then
`pip install --no-build-isolation .`), numpy and scipy.

Both splits come from ../shared/bench/split.py (`--format ml100k`; cold: `--cold-items 0.1
--seed 0`) and every recs file is scored by ../shared/bench/evaluate.py at K = 10. Item
features (both tools get the same ones) are the genres, the release decade and the title
words of u.item, written as `item<TAB>tokens` for tailor. LightFM gets identity features
plus these (its documented hybrid setup), WARP loss, `num_threads` = cores; on the cold split
both rank only the held-out (cold) items, as `tailor recommend --cold-items-only` does.
Prints one JSON line per run.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time

import numpy as np
import scipy.sparse as sp

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
SHARED = os.environ.get("SHARED", os.path.join(ROOT, "..", "shared"))
TAILOR = os.path.join(ROOT, "target", "release", "tailor")


def item_tokens(path):
    out = {}
    with open(path, encoding="latin-1") as f:
        genres = [g.split("|")[0] for g in open(os.path.join(os.path.dirname(path), "u.genre"), encoding="latin-1")
                  if g.strip()]
        for line in f:
            p = line.rstrip("\n").split("|")
            toks = [f"genre:{g}" for g, flag in zip(genres, p[5:]) if flag == "1"]
            year = re.search(r"(\d{4})\s*$", p[2] or "")
            if year:
                toks.append(f"decade:{year.group(1)[:3]}0s")
            title = re.sub(r"\(\d{4}\)", "", p[1]).lower()
            toks += [f"word:{w}" for w in re.findall(r"[a-z0-9']+", title) if len(w) > 2]
            out[p[0]] = toks
    return out


def read(path):
    rows = []
    with open(path) as f:
        next(f)
        for line in f:
            p = line.rstrip("\n").split("\t")
            rows.append((p[0], p[1]))
    return rows


def evaluate(d, recs):
    out = subprocess.run([sys.executable, os.path.join(SHARED, "bench", "evaluate.py"), "--train",
                          os.path.join(d, "train.tsv"), "--test", os.path.join(d, "test.tsv"), "--recs", recs,
                          "--k", "10"], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def lightfm_run(d, tokens, features, epochs, components, seed, cold_only, threads):
    from lightfm import LightFM
    train, test = read(os.path.join(d, "train.tsv")), read(os.path.join(d, "test.tsv"))
    users = sorted({u for u, _ in train + test})
    items = sorted({i for _, i in train + test} | set(tokens))
    uix, iix = {u: n for n, u in enumerate(users)}, {i: n for n, i in enumerate(items)}
    m = sp.coo_matrix((np.ones(len(train), dtype=np.float32), ([uix[u] for u, _ in train], [iix[i] for _, i in train])),
                      shape=(len(users), len(items))).tocsr()
    m.data[:] = 1.0
    item_features = None
    if features:
        vocab = sorted({t for ts in tokens.values() for t in ts})
        tix = {t: len(items) + n for n, t in enumerate(vocab)}
        r, c = list(range(len(items))), list(range(len(items)))
        for i in items:
            for t in tokens.get(i, []):
                r.append(iix[i])
                c.append(tix[t])
        f = sp.coo_matrix((np.ones(len(r), dtype=np.float32), (r, c)), shape=(len(items), len(items) + len(vocab))).tocsr()
        # LightFM's advice: normalise each item's feature row to sum 1.
        f = sp.diags(1.0 / np.asarray(f.sum(axis=1)).ravel()) @ f
        item_features = f.tocsr()
    model = LightFM(loss="warp", no_components=components, learning_rate=0.05, random_state=seed)
    t = time.perf_counter()
    model.fit(m, item_features=item_features, epochs=epochs, num_threads=threads)
    train_s = time.perf_counter() - t
    trained = set(i for _, i in train)
    candidates = np.array([iix[i] for i in items if not cold_only or i not in trained], dtype=np.int32)
    seen = {}
    for u, i in train:
        seen.setdefault(u, set()).add(iix[i])
    test_users = sorted({u for u, _ in test})
    out = os.path.join(d, "recs-lightfm.tsv")
    with open(out, "w") as w:
        w.write("user\titem\trank\n")
        for u in test_users:
            s = model.predict(uix[u], candidates, item_features=item_features, num_threads=threads)
            order = np.argsort(-s, kind="stable")
            rank = 0
            for j in order:
                it = candidates[j]
                if it in seen.get(u, ()):
                    continue
                rank += 1
                w.write(f"{u}\t{items[it]}\t{rank}\n")
                if rank == 10:
                    break
    return out, train_s


def tailor_run(d, model, params, feats, cold_only):
    users = os.path.join(d, "users.txt")
    with open(users, "w") as w:
        w.write("\n".join(sorted({u for u, _ in read(os.path.join(d, "test.tsv"))})) + "\n")
    out = os.path.join(d, "recs-tailor.tsv")
    cmd = [TAILOR, "recommend", "--train", os.path.join(d, "train.tsv"), "--users", users, "--model", model,
           "--out", out, "--k", "10"]
    if params:
        cmd += ["--params", params]
    if feats:
        cmd += ["--item-features", feats]
    if cold_only:
        cmd.append("--cold-items-only")
    rep = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    return out, rep["train_seconds"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--components", type=int, default=64)
    ap.add_argument("--seeds", type=int, default=3)
    a = ap.parse_args()
    import lightfm
    threads = os.cpu_count()
    data = os.path.join(SHARED, "data", "ml-100k")
    tokens = item_tokens(os.path.join(data, "u.item"))
    with tempfile.TemporaryDirectory() as t:
        feats = os.path.join(t, "items.tsv")
        with open(feats, "w") as w:
            for i, ts in tokens.items():
                w.write(f"{i}\t{' '.join(ts)}\n")
        splits = {"warm": [], "cold": ["--cold-items", "0.1", "--seed", "0"]}
        for name, extra in splits.items():
            d = os.path.join(t, name)
            subprocess.run([sys.executable, os.path.join(SHARED, "bench", "split.py"), "--format", "ml100k", "--in",
                            os.path.join(data, "u.data"), "--out", d] + extra, check=True, capture_output=True)
            cold = name == "cold"
            runs = [("lightfm-warp", False), ("lightfm-warp+features", True)] if not cold else [
                ("lightfm-warp+features", True)]
            for label, use_features in runs:
                for seed in range(a.seeds):
                    recs, secs = lightfm_run(d, tokens, use_features, a.epochs, a.components, seed, cold, threads)
                    print(json.dumps({"split": name, "tool": f"lightfm {lightfm.__version__}", "model": label,
                                      "seed": seed, "epochs": a.epochs, "train_seconds": round(secs, 3),
                                      "metrics": evaluate(d, recs)}))
                    sys.stdout.flush()
            ours = [("ease", "lambda=800,recency=5"), ("hybrid", "lambda=800,recency=5")] if not cold else [
                ("content", ""), ("hybrid", "")]
            for model, params in ours:
                recs, secs = tailor_run(d, model, params, feats, cold)
                print(json.dumps({"split": name, "tool": "tailor", "model": model, "params": params,
                                  "train_seconds": round(secs, 3), "metrics": evaluate(d, recs)}))
                sys.stdout.flush()


if __name__ == "__main__":
    main()
