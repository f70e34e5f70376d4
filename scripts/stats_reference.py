#!/usr/bin/env python3
"""Reference values for tailor-experiment's statistics, computed with scipy.

Writes crates/tailor-experiment/tests/golden/scipy_stats.json; the Rust test
`golden_statistics_match_scipy` checks every value to 1e-9 relative.

    python3 scripts/stats_reference.py   # scipy 1.17.1 made the committed file

The z-test, interval and power formulas are the textbook ones (written out below, as
tailor computes them) evaluated with scipy.stats.norm; chi-square, goodness of fit and
Welch's t-test are scipy's own functions.
"""
import json
import math
import os

import numpy as np
import scipy
from scipy import stats

rng = np.random.default_rng(20261127)
out = {"scipy": scipy.__version__, "chi2_independence": [], "goodness_of_fit": [], "z_test": [],
       "welch": [], "power": [], "holm": [], "normal": [], "chi2_sf": [], "t_sf": []}

tables = [
    [[120, 880], [150, 850]],
    [[40, 9960], [61, 9939]],
    [[5, 15], [9, 11]],
    [[1000, 99000], [1100, 98900], [1050, 98950]],
    [[3, 7], [0, 10]],
    [[500, 500], [500, 500]],
]
for t in tables:
    for yates in (False, True):
        r = stats.chi2_contingency(np.array(t), correction=yates)
        out["chi2_independence"].append({"table": t, "yates": yates, "statistic": float(r.statistic),
                                         "dof": int(r.dof), "p_value": float(r.pvalue)})

for obs, w in [([5000, 5100], [1, 1]), ([49500, 50500], [1, 1]), ([3300, 3300, 3400], [1, 1, 1]),
               ([900, 2100], [0.3, 0.7]), ([10, 30, 60], [0.2, 0.3, 0.5])]:
    total = sum(obs)
    exp = [total * x / sum(w) for x in w]
    r = stats.chisquare(obs, f_exp=exp)
    out["goodness_of_fit"].append({"observed": obs, "weights": w, "statistic": float(r.statistic),
                                   "p_value": float(r.pvalue)})

def z_test(x1, n1, x2, n2, alpha):
    p1, p2 = x1 / n1, x2 / n2
    pool = (x1 + x2) / (n1 + n2)
    se0 = math.sqrt(pool * (1 - pool) * (1 / n1 + 1 / n2))
    z = (p2 - p1) / se0
    p = 2 * stats.norm.sf(abs(z))
    q = stats.norm.ppf(1 - alpha / 2)
    se1 = math.sqrt(p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2)
    d = p2 - p1
    lift = p2 / p1 - 1
    se_log = math.sqrt((1 - p1) / (n1 * p1) + (1 - p2) / (n2 * p2))
    return {"x1": x1, "n1": n1, "x2": x2, "n2": n2, "alpha": alpha, "z": z, "p_value": p,
            "diff": d, "diff_lo": d - q * se1, "diff_hi": d + q * se1, "lift": lift,
            "lift_lo": math.exp(math.log(p2 / p1) - q * se_log) - 1,
            "lift_hi": math.exp(math.log(p2 / p1) + q * se_log) - 1}

for c in [(120, 1000, 150, 1000, 0.05), (400, 10000, 461, 10000, 0.05), (40, 1000, 38, 1200, 0.1),
          (2000, 50000, 2100, 50000, 0.01), (7, 90, 15, 95, 0.05)]:
    out["z_test"].append(z_test(*c))

for n1, n2, m1, m2, s1, s2 in [(30, 40, 50.0, 55.0, 10.0, 14.0), (200, 180, 80.0, 82.0, 30.0, 25.0),
                                (12, 9, 1.0, 3.0, 2.0, 4.0), (1000, 1000, 61.0, 61.5, 45.0, 47.0)]:
    a = np.round(rng.normal(m1, s1, n1), 4)
    b = np.round(rng.normal(m2, s2, n2), 4)
    r = stats.ttest_ind(b, a, equal_var=False)
    ci = r.confidence_interval(0.95)
    out["welch"].append({"a": a.tolist(), "b": b.tolist(), "t": float(r.statistic), "df": float(r.df),
                         "p_value": float(r.pvalue), "diff_lo": float(ci.low), "diff_hi": float(ci.high)})

def sample_size(p1, mde, alpha, power):
    p2 = p1 * (1 + mde)
    za = stats.norm.ppf(1 - alpha / 2)
    zb = stats.norm.ppf(power)
    pbar = (p1 + p2) / 2
    num = (za * math.sqrt(2 * pbar * (1 - pbar)) + zb * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))) ** 2
    return num / (p2 - p1) ** 2

def achieved(p1, p2, n, alpha):
    za = stats.norm.ppf(1 - alpha / 2)
    pbar = (p1 + p2) / 2
    se0 = math.sqrt(2 * pbar * (1 - pbar) / n)
    se1 = math.sqrt((p1 * (1 - p1) + p2 * (1 - p2)) / n)
    d = abs(p2 - p1)
    return stats.norm.cdf((d - za * se0) / se1) + stats.norm.cdf((-d - za * se0) / se1)

for p1, mde, alpha, power in [(0.04, 0.1, 0.05, 0.8), (0.1, 0.05, 0.05, 0.9), (0.02, 0.2, 0.01, 0.8),
                              (0.5, 0.02, 0.05, 0.8)]:
    n = sample_size(p1, mde, alpha, power)
    out["power"].append({"baseline": p1, "mde": mde, "alpha": alpha, "power": power, "n_exact": n,
                         "n": math.ceil(n), "power_at_n": achieved(p1, p1 * (1 + mde), math.ceil(n), alpha)})

def holm(ps):
    m = len(ps)
    order = sorted(range(m), key=lambda i: ps[i])
    adj = [0.0] * m
    run = 0.0
    for rank, i in enumerate(order):
        run = max(run, min(1.0, (m - rank) * ps[i]))
        adj[i] = run
    return adj

for ps in [[0.01, 0.04, 0.03], [0.2, 0.001, 0.049, 0.5], [0.04]]:
    out["holm"].append({"p": ps, "adjusted": holm(ps)})

for x in [-8.0, -3.5, -1.96, -0.3, 0.0, 0.7, 1.644853626951, 2.5, 6.0]:
    out["normal"].append({"x": x, "cdf": float(stats.norm.cdf(x)), "sf": float(stats.norm.sf(x))})
for q in [1e-10, 0.001, 0.025, 0.2, 0.5, 0.8, 0.975, 0.999]:
    out["normal"].append({"q": q, "ppf": float(stats.norm.ppf(q))})
for x, k in [(0.5, 1), (3.84, 1), (12.0, 3), (0.01, 2), (40.0, 5), (100.0, 7)]:
    out["chi2_sf"].append({"x": x, "dof": k, "sf": float(stats.chi2.sf(x, k))})
for x, df in [(0.5, 3.0), (2.1, 17.4), (4.0, 120.7), (1.0, 1.0), (7.0, 2.5)]:
    out["t_sf"].append({"x": x, "df": df, "sf": float(stats.t.sf(x, df)), "ppf975": float(stats.t.ppf(0.975, df))})

path = os.path.join(os.path.dirname(__file__), "..", "crates", "tailor-experiment", "tests", "golden", "scipy_stats.json")
with open(path, "w") as f:
    json.dump(out, f, indent=1)
    f.write("\n")
print("wrote", os.path.normpath(path))
