#!/usr/bin/env python3
"""Reference values for the paired statistics (Tests/OODDetectionTests/StatisticsTests.swift),
computed with scipy (independent of our code):

    python3 -m venv /tmp/v && /tmp/v/bin/pip install scipy numpy
    /tmp/v/bin/python Tests/Fixtures/statistics/make_fixture.py > Tests/Fixtures/statistics/scipy.json
"""
import json

import numpy as np
import scipy
from scipy import stats

quantiles = []
for df in [1, 2, 3, 4, 5, 9, 29, 100]:
    for p in [0.5, 0.6, 0.9, 0.95, 0.975, 0.995, 0.025]:
        quantiles.append({"df": df, "p": p, "t": float(stats.t.ppf(p, df))})
cdfs = [{"df": df, "t": t, "cdf": float(stats.t.cdf(t, df))} for df in [1, 2, 7] for t in [-3.0, -0.5, 0.0, 1.25, 4.0]]

# Paired differences over seeds: method and reference AUROCs of 3 and 5 seeds.
pairs = []
for method, reference in [([0.912, 0.905, 0.931], [0.901, 0.899, 0.915]),
                          ([0.70, 0.66, 0.74, 0.69, 0.71], [0.68, 0.70, 0.69, 0.70, 0.66])]:
    d = np.array(method) - np.array(reference)
    n = len(d)
    mean = float(d.mean())
    sd = float(d.std(ddof=1))
    lo, hi = stats.t.interval(0.95, n - 1, loc=mean, scale=sd / np.sqrt(n))
    ttest = stats.ttest_rel(method, reference)
    pairs.append({"method": method, "reference": reference, "mean": mean, "sd": sd,
                  "lower": float(lo), "upper": float(hi), "p_value": float(ttest.pvalue)})

print(json.dumps({"scipy": scipy.__version__, "quantiles": quantiles, "cdfs": cdfs, "pairs": pairs}, indent=1))
