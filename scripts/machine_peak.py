#!/usr/bin/env python3
"""What this machine can do, for comparing a kernel's speed with it (issue #21).

Usage: python3 scripts/machine_peak.py [--threads 2]
Prints one JSON line: single-precision GEMM (OpenBLAS through numpy, 2048^3: the
arithmetic peak a tuned kernel reaches), a streaming copy and sum of 256 MiB (memory
bandwidth, one thread: numpy's copy and sum run on one). Best of three each.
Needs numpy.
"""
import argparse
import json
import os
import time

ap = argparse.ArgumentParser()
ap.add_argument("--threads", type=int, default=os.cpu_count())
a = ap.parse_args()
os.environ["OPENBLAS_NUM_THREADS"] = str(a.threads)
import numpy as np  # noqa: E402


def best(f, n=3):
    times = []
    for _ in range(n):
        s = time.perf_counter()
        f()
        times.append(time.perf_counter() - s)
    return min(times)


n = 2048
x = np.random.default_rng(0).random((n, n), dtype=np.float32)
gemm = 2 * n**3 / best(lambda: x @ x) / 1e9
big = np.ones(64 * 2**20, dtype=np.float32)
out = np.empty_like(big)
copy = 2 * big.nbytes / best(lambda: np.copyto(out, big)) / 1e9
total = big.nbytes / best(lambda: big.sum()) / 1e9
print(json.dumps({"threads": a.threads, "sgemm_gflops": round(gemm, 1), "copy_gb_s_1_thread": round(copy, 1),
                  "sum_gb_s_1_thread": round(total, 1)}))
