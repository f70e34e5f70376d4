#!/usr/bin/env python3
"""Reference cohort matrices for `tailor report cohorts` (crates/tailor-segment/src/cohort.rs),
computed independently with pandas from the raw shared files.

    target/clv-venv/bin/python scripts/golden_cohorts.py > crates/tailor-cli/tests/golden/cohorts.json

(the venv of scripts/golden_clv.py; pandas 2.2.3). Definitions: a customer's cohort is the
UTC month of their first purchase; per cohort and months since, the customers with a
purchase in that month and the value of those purchases.
- CDNOW master: every row is a purchase of `amount`.
- Online Retail, with the importer's `--preset online-retail` rules: lines with a customer,
  a positive quantity, an invoice not starting with C and a non-negative unit price are
  purchases of quantity × unit price; the rest are returns or anonymous.
"""
import json
import sys
from pathlib import Path

import pandas as pd

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"


def matrix(df):
    """df: customer, month (Period), amount."""
    first = df.groupby("customer")["month"].min().rename("cohort")
    df = df.join(first, on="customer")
    df["since"] = (df["month"] - df["cohort"]).apply(lambda d: d.n)
    active = df.drop_duplicates(["customer", "month"]).groupby(["cohort", "since"]).size()
    revenue = df.groupby(["cohort", "since"])["amount"].sum()
    last = df["month"].max()
    rows = []
    for cohort in sorted(first.unique()):
        width = (last - cohort).n + 1
        rows.append({
            "month": str(cohort),
            "size": int(active.get((cohort, 0), 0)),
            "active": [int(active.get((cohort, m), 0)) for m in range(width)],
            "revenue": [float(revenue.get((cohort, m), 0.0)) for m in range(width)],
        })
    return {"customers": int(first.size), "last_month": str(last), "rows": rows}


def cdnow():
    m = pd.read_csv(DATA / "cdnow" / "cdnow_master.csv", parse_dates=["date"])
    return matrix(pd.DataFrame({"customer": m["customer_id"], "month": m["date"].dt.to_period("M"),
                                "amount": m["amount"]}))


def online_retail():
    r = pd.read_csv(DATA / "online-retail" / "online_retail.csv.gz", dtype={"InvoiceNo": str, "CustomerID": str},
                    parse_dates=["InvoiceDate"])
    keep = (r["CustomerID"].notna() & (r["Quantity"] > 0) & ~r["InvoiceNo"].str.startswith("C")
            & (r["UnitPrice"] >= 0))
    r = r[keep]
    return matrix(pd.DataFrame({"customer": r["CustomerID"], "month": r["InvoiceDate"].dt.to_period("M"),
                                "amount": r["Quantity"] * r["UnitPrice"]}))


json.dump({"made_by": "scripts/golden_cohorts.py", "pandas": pd.__version__,
           "cdnow": cdnow(), "online_retail": online_retail()}, sys.stdout, indent=1)
print()
