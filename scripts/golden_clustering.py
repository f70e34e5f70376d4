#!/usr/bin/env python3
"""Reference values for tailor-segment's clustering tests, from scikit-learn.

Run: pip install scikit-learn==1.5.2 numpy==2.4.6 && python3 scripts/golden_clustering.py
Writes crates/tailor-segment/tests/golden/clustering.json. The datasets (iris, wine) ship
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
    }
    OUT.write_text(json.dumps(doc, separators=(",", ":")) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
