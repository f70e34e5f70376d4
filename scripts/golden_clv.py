#!/usr/bin/env python3
"""Reference values for tailor's lifetime-value models (crates/tailor-segment/src/clv.rs),
made by the `lifetimes` package on the shared CDNOW data.

Pinned versions (lifetimes 0.11.3 predates numpy 2 and pandas 3):

    python3 -m venv target/clv-venv
    target/clv-venv/bin/pip install lifetimes==0.11.3 numpy==1.26.4 pandas==2.2.3 \
        scipy==1.13.1 autograd==1.7.0 python-dateutil==2.9.0.post0
    target/clv-venv/bin/python scripts/golden_clv.py > crates/tailor-segment/tests/golden/clv_cdnow.json

Two settings:
- `sample`: the paper's (Fader, Hardie & Lee 2005): the 2,357-customer sample, weeks,
  calibration to 1997-09-30 (39 weeks); BG/NBD there should give r = 0.243, α = 4.414,
  a = 0.793, b = 2.426. Gamma-Gamma on the whole 78 weeks (lifetimes' documented example).
- `master`: all 23,570 customers, days, observation to 1998-06-30: BG/NBD, Gamma-Gamma,
  and per customer P(alive), purchases expected in 90 days, expected value and 3-month CLV
  (freq "D", discount 0 and 0.01), for every 97th customer.
Fit times are lifetimes' own, measured here, for docs/benchmarks.md.
"""
import json
import sys
import time
from pathlib import Path

import lifetimes
import numpy as np
import pandas as pd
from lifetimes import BetaGeoFitter, GammaGammaFitter
from lifetimes.utils import summary_data_from_transaction_data

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "cdnow"


def timed_fit(model, *args, **kwargs):
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        model.fit(*args, **kwargs)
        best = min(best, time.perf_counter() - start)
    return best


def sample():
    s = pd.read_csv(DATA / "CDNOW_sample.txt", sep=r"\s+", header=None,
                    names=["master_id", "id", "date", "cds", "value"], dtype={"date": str})
    s["date"] = pd.to_datetime(s["date"], format="%Y%m%d")
    cal = summary_data_from_transaction_data(s, "id", "date", observation_period_end="1997-09-30", freq="D")
    cal = cal[cal.index.isin(s[s["date"] <= "1997-09-30"]["id"])]
    cal["recency"] /= 7.0
    cal["T"] /= 7.0
    bg = BetaGeoFitter()
    bg_seconds = timed_fit(bg, cal["frequency"], cal["recency"], cal["T"], tol=1e-8)
    full = summary_data_from_transaction_data(s, "id", "date", monetary_value_col="value",
                                              observation_period_end="1998-06-30", freq="D")
    repeat = full[(full["frequency"] > 0) & (full["monetary_value"] > 0)]
    gg = GammaGammaFitter()
    gg_seconds = timed_fit(gg, repeat["frequency"], repeat["monetary_value"], tol=1e-8)
    return {
        "customers": int(len(cal)),
        "bg_nbd": {k: float(v) for k, v in bg.params_.items()},
        "gamma_gamma": {k: float(v) for k, v in gg.params_.items()},
        "gamma_gamma_customers": int(len(repeat)),
        "lifetimes_seconds": {"bg_nbd": bg_seconds, "gamma_gamma": gg_seconds},
    }


def master():
    m = pd.read_csv(DATA / "cdnow_master.csv", parse_dates=["date"])
    summary = summary_data_from_transaction_data(m, "customer_id", "date", monetary_value_col="amount",
                                                 observation_period_end="1998-06-30", freq="D")
    bg = BetaGeoFitter()
    bg_seconds = timed_fit(bg, summary["frequency"], summary["recency"], summary["T"], tol=1e-8)
    repeat = summary[(summary["frequency"] > 0) & (summary["monetary_value"] > 0)]
    gg = GammaGammaFitter()
    gg_seconds = timed_fit(gg, repeat["frequency"], repeat["monetary_value"], tol=1e-8)
    picked = summary.iloc[::97]
    f, r, t, mv = picked["frequency"], picked["recency"], picked["T"], picked["monetary_value"]
    value = gg.conditional_expected_average_profit(f, mv)
    clv0 = gg.customer_lifetime_value(bg, f, r, t, mv, time=3, discount_rate=0.0, freq="D")
    clv1 = gg.customer_lifetime_value(bg, f, r, t, mv, time=3, discount_rate=0.01, freq="D")
    rows = []
    for i, cid in enumerate(picked.index):
        rows.append({
            "customer": int(cid),
            "frequency": int(f.iloc[i]),
            "recency": float(r.iloc[i]),
            "t": float(t.iloc[i]),
            "monetary": float(mv.iloc[i]),
            "p_alive": float(np.atleast_1d(bg.conditional_probability_alive(f.iloc[i], r.iloc[i], t.iloc[i]))[0]),
            "purchases_90d": float(bg.conditional_expected_number_of_purchases_up_to_time(
                90, f.iloc[i], r.iloc[i], t.iloc[i])),
            "expected_value": float(value.iloc[i]),
            "clv_3m": float(clv0.iloc[i]),
            "clv_3m_discount_1pct": float(clv1.iloc[i]),
        })
    return {
        "customers": int(len(summary)),
        "bg_nbd": {k: float(v) for k, v in bg.params_.items()},
        "gamma_gamma": {k: float(v) for k, v in gg.params_.items()},
        "gamma_gamma_customers": int(len(repeat)),
        "lifetimes_seconds": {"bg_nbd": bg_seconds, "gamma_gamma": gg_seconds},
        "customers_checked": rows,
    }


json.dump({
    "made_by": "scripts/golden_clv.py",
    "versions": {"lifetimes": lifetimes.__version__, "numpy": np.__version__, "pandas": pd.__version__},
    "sample": sample(),
    "master": master(),
}, sys.stdout, indent=1)
print()
