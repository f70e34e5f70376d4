#!/usr/bin/env python3
"""Reference values for tailor-segment's clustering tests, from scikit-learn.

Run: pip install scikit-learn==1.5.2 numpy==2.4.6 && python3 scripts/golden_clustering.py
Writes crates/tailor-segment/tests/golden/clustering.json. MovieLens-100K user features are
computed here independently from ../shared/data/ml-100k; only aggregates and labels are stored. The datasets (iris, wine) ship
with scikit-learn (BSD-3-Clause); they are small and copied into the JSON with the values.
"""
import json
import pathlib

import numpy as np
import sklearn
from sklearn.cluster import DBSCAN, AgglomerativeClustering, KMeans
from sklearn.datasets import load_iris, load_wine
from sklearn.decomposition import PCA
from sklearn.metrics import silhouette_samples, silhouette_score

OUT = pathlib.Path(__file__).resolve().parent.parent / "crates/tailor-segment/tests/golden/clustering.json"


def case(name, X):
    runs = []
    for k in range(2, 7):
        km = KMeans(n_clusters=k, n_init=10, random_state=0, tol=1e-4, max_iter=300).fit(X)
        labels = km.labels_.astype(int)
        by_seed = [
            float(KMeans(n_clusters=k, n_init=10, random_state=s, tol=1e-4, max_iter=300).fit(X).inertia_)
            for s in range(40)
        ]
        runs.append({
            "k": k,
            "inertia_by_seed": by_seed,
            "inertia": float(km.inertia_),
            "labels": labels.tolist(),
            "silhouette": float(silhouette_score(X, labels)),
            "silhouette_samples_head": [float(v) for v in silhouette_samples(X, labels)[:10]],
        })
    dbscan = []
    for eps, min_samples in DBSCAN_PARAMS[name]:
        labels = DBSCAN(eps=eps, min_samples=min_samples, algorithm="brute").fit(X).labels_
        dbscan.append({"eps": eps, "min_samples": min_samples, "labels": labels.astype(int).tolist()})
    ward = []
    for k in range(2, 7):
        labels = AgglomerativeClustering(n_clusters=k, linkage="ward").fit(X).labels_
        ward.append({"k": k, "labels": labels.astype(int).tolist()})
    pca = PCA(n_components=2).fit(X)
    pca_out = {
        "explained_variance": pca.explained_variance_.tolist(),
        "explained_variance_ratio": pca.explained_variance_ratio_.tolist(),
        "components": pca.components_.tolist(),
        "projected_head": pca.transform(X[:5]).tolist(),
    }
    return {"name": name, "n": int(X.shape[0]), "d": int(X.shape[1]), "x": X.ravel().tolist(), "kmeans": runs,
            "dbscan": dbscan, "ward": ward, "pca": pca_out}


# (eps, min_samples) pairs giving several clusters, border points and noise.
DBSCAN_PARAMS = {
    "iris": [(0.4, 4), (0.5, 5), (0.8, 10)],
    "wine": [(30.0, 4), (50.0, 5)],
    "wine_zscore": [(2.0, 4), (2.3, 5), (2.6, 8)],
}


ML_FEATURES = ["sessions", "visit_frequency", "session_duration_s", "tod_night", "tod_evening", "weekend_share",
               "age", "cat_drama", "cat_action", "cat_comedy"]
ML_DIR = pathlib.Path(__file__).resolve().parent.parent.parent / "shared/data/ml-100k"
DAY = 86_400_000
GAP = 30 * 60 * 1000


def ml100k_user_features():
    """tailor's user features of MovieLens-100K, computed independently of tailor (see the
    table in crates/tailor-segment/src/features.rs): ratings are item events; sessions split
    at gaps over 30 minutes; as-of = the latest rating; the category of a movie is its first
    genre in u.genre order."""
    genres = [l.split("|")[0] for l in (ML_DIR / "u.genre").read_text().splitlines() if l.strip()]
    first_genre = {}
    for line in (ML_DIR / "u.item").read_text(encoding="latin-1").splitlines():
        p = line.split("|")
        flags = p[5:5 + len(genres)]
        first_genre[p[0]] = next((g for g, f in zip(genres, flags) if f == "1"), None)
    ages = {}
    for line in (ML_DIR / "u.user").read_text().splitlines():
        p = line.split("|")
        ages[p[0]] = float(p[1])
    events = {}
    order = []
    for line in (ML_DIR / "u.data").read_text().splitlines():
        u, i, _r, ts = line.split("\t")
        if u not in events:
            events[u] = []
            order.append(u)
        events[u].append((int(ts) * 1000, i))
    as_of = max(t for ev in events.values() for t, _ in ev)
    cat_total = {}
    for ev in events.values():
        for _, i in ev:
            g = first_genre.get(i)
            if g is not None:
                cat_total[g] = cat_total.get(g, 0) + 1
    top = sorted(cat_total.items(), key=lambda kv: (-kv[1], kv[0]))[:3]
    assert [g for g, _ in top] == ["Drama", "Action", "Comedy"], top
    rows = []
    for u in order:
        ev = sorted(events[u])
        ts = [t for t, _ in ev]
        spans = []
        for t in ts:
            if spans and t - spans[-1][1] <= GAP:
                spans[-1][1] = t
            else:
                spans.append([t, t])
        n = len(ts)
        tenure = max(7.0, max(0.0, (as_of - ts[0]) / DAY))
        hours = [(t // 3_600_000) % 24 for t in ts]
        weekend = sum(1 for t in ts if (t // DAY + 3) % 7 >= 5)
        cats = [first_genre.get(i) for _, i in ev]
        rows.append([
            float(len(spans)),
            len(spans) * 7.0 / tenure,
            sum((b - a) / 1000.0 for a, b in spans) / len(spans),
            sum(1 for h in hours if h < 6) / n,
            sum(1 for h in hours if h >= 18) / n,
            weekend / n,
            ages[u],
            cats.count("Drama") / n,
            cats.count("Action") / n,
            cats.count("Comedy") / n,
        ])
    return order, np.array(rows, dtype=np.float64)


def ml100k_case():
    users, raw = ml100k_user_features()
    X = (raw - raw.mean(axis=0)) / raw.std(axis=0)
    kmeans = []
    for k in range(2, 7):
        km = KMeans(n_clusters=k, n_init=10, random_state=0, tol=1e-4, max_iter=300).fit(X)
        labels = km.labels_.astype(int)
        kmeans.append({"k": k, "inertia": float(km.inertia_), "labels": labels.tolist(),
                       "silhouette": float(silhouette_score(X, labels))})
    dbscan = []
    for eps, min_samples in [(1.0, 5), (1.5, 8)]:
        labels = DBSCAN(eps=eps, min_samples=min_samples, algorithm="brute").fit(X).labels_
        dbscan.append({"eps": eps, "min_samples": min_samples, "labels": labels.astype(int).tolist()})
    ward = [{"k": k, "labels": AgglomerativeClustering(n_clusters=k, linkage="ward").fit(X).labels_.astype(int).tolist()}
            for k in range(2, 7)]
    # Aggregates only: the feature matrix itself is derived from MovieLens and stays out of the repo.
    stats = {"mean": raw.mean(axis=0).tolist(), "std": raw.std(axis=0).tolist(), "min": raw.min(axis=0).tolist(),
             "max": raw.max(axis=0).tolist(), "sum_first_10_rows": raw[:10].sum(axis=1).tolist()}
    return {"name": "ml100k_users", "features": ML_FEATURES, "users": users, "n": int(X.shape[0]),
            "d": int(X.shape[1]), "feature_stats": stats, "kmeans": kmeans, "dbscan": dbscan, "ward": ward}


def main():
    iris = load_iris().data.astype(np.float64)
    wine = load_wine().data.astype(np.float64)
    wine_z = (wine - wine.mean(axis=0)) / wine.std(axis=0)
    doc = {
        "_header": {
            "script": "scripts/golden_clustering.py",
            "sklearn": sklearn.__version__,
            "numpy": np.__version__,
            "command": "python3 scripts/golden_clustering.py",
            "kmeans": "KMeans(n_clusters=k, n_init=10, random_state=0, tol=1e-4, max_iter=300)",
            "dbscan": "DBSCAN(eps, min_samples, algorithm='brute')",
            "ward": "AgglomerativeClustering(n_clusters=k, linkage='ward')",
            "pca": "PCA(n_components=2)",
        },
        "datasets": [case("iris", iris), case("wine", wine), case("wine_zscore", wine_z)],
        "ml100k_users": ml100k_case(),
    }
    OUT.write_text(json.dumps(doc, separators=(",", ":")) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
