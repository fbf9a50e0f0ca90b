"""AUPR fixture: scikit-learn's two conventions on score sets with ties.

average_precision_score (our default) and auc(recall, precision) over precision_recall_curve
(the trapezoid rule OpenOOD v1.5 and pytorch-ood print), each with ID positive on the scores
(AUPR-In) and OOD positive on the negated scores (AUPR-Out), as OpenOOD's
openood/evaluators/metrics.py does. Run: python3 make_aupr_fixture.py > aupr.json
"""
import json
import numpy as np
import sklearn
from sklearn import metrics

rng = np.random.default_rng(2026)
cases = [
    {"name": "worked", "id": [0.9, 0.8, 0.7, 0.4], "ood": [0.85, 0.5, 0.1]},
    {"name": "ood on top", "id": [1.0, 2.0, 3.0], "ood": [5.0, 4.0, 0.5]},
    {"name": "all tied", "id": [1.0, 1.0], "ood": [1.0, 1.0, 1.0]},
    {"name": "coarse grid ties", "id": list(rng.integers(0, 6, 40).astype(float)), "ood": list(rng.integers(-2, 4, 30).astype(float))},
    {"name": "gaussian", "id": list(rng.normal(1, 1, 300)), "ood": list(rng.normal(0, 1, 200))},
    {"name": "outlier", "id": list(rng.normal(0, 1, 50)) + [1e6], "ood": list(rng.normal(-0.5, 1, 60)) + [-1e6, 1e5]},
]
out = {"sklearn_version": sklearn.__version__, "cases": []}
for c in cases:
    idv, oodv = np.array(c["id"], dtype=float), np.array(c["ood"], dtype=float)
    conf = np.concatenate([idv, oodv])
    is_id = np.concatenate([np.ones(len(idv)), np.zeros(len(oodv))])
    p_in, r_in, _ = metrics.precision_recall_curve(is_id, conf)
    p_out, r_out, _ = metrics.precision_recall_curve(1 - is_id, -conf)
    out["cases"].append({
        "name": c["name"], "id": [float(v) for v in idv], "ood": [float(v) for v in oodv],
        "trapezoid_in": float(metrics.auc(r_in, p_in)), "trapezoid_out": float(metrics.auc(r_out, p_out)),
        "ap_in": float(metrics.average_precision_score(is_id, conf)),
        "ap_out": float(metrics.average_precision_score(1 - is_id, -conf)),
    })
print(json.dumps(out, indent=1))
