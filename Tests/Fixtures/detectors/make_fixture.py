"""Independent numpy twins of the post-hoc detectors in Sources/OODDetection/ExtraDetectors.swift,
written from the papers' formulas (not from any project's code). Writes detectors.json beside this
file; DetectorFixtureTests compares our Swift scores with it.

    python3 Tests/Fixtures/detectors/make_fixture.py

Data: non-negative (post-ReLU) penultimate features with tied entries, a duplicated row, a zero
row and an outlier, a 4-class linear head, and the logits it gives (float64).
"""
import json
import os

import numpy as np

rng = np.random.default_rng(7)
K, D, N_TRAIN = 4, 6, 40
labels = np.arange(N_TRAIN) % K
centres = rng.uniform(0.0, 2.0, size=(K, D))
train = np.maximum(centres[labels] + rng.normal(0, 0.4, size=(N_TRAIN, D)), 0.0)
train = np.round(train, 2)  # ties within and across rows
train[5] = train[4]  # a duplicated row
test = np.maximum(centres[rng.integers(0, K, 12)] + rng.normal(0, 0.7, size=(12, D)), 0.0)
test = np.round(test, 1)  # more ties
test[3] = 0.0  # an all-zero activation vector
test[7] = test[7] * 9.0  # an outlier
test[9, :3] = test[9, 0]  # ties inside one row
# Float32-representable inputs, so the Swift side (Float features) sees exactly these values.
train = train.astype(np.float32).astype(np.float64)
test = test.astype(np.float32).astype(np.float64)
W = rng.normal(0, 1, size=(K, D))
b = rng.normal(0, 0.5, size=K)


def logits_of(z):
    return z @ W.T + b


def logsumexp(x):
    m = x.max(axis=1, keepdims=True)
    return (m + np.log(np.exp(x - m).sum(axis=1, keepdims=True)))[:, 0]


def energy(z):
    return logsumexp(logits_of(z))


# GEN (Liu et al., CVPR 2023, Eq. 4): -sum over the M largest softmax probabilities of p^g (1-p)^g.
def gen(logits, gamma, m):
    z = logits - logits.max(axis=1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    top = -np.sort(-p, axis=1)[:, :m]
    return -(top ** gamma * (1 - top) ** gamma).sum(axis=1)


# fDBD (Liu & Qin, ICML 2024, Eq. 5): mean over j != c of the distance from z to the boundary
# between the predicted class c and j, (l_c - l_j) / ||w_c - w_j||, divided by ||z - mean of training features||.
def fdbd(z, mu):
    l = logits_of(z)
    out = []
    for i in range(len(z)):
        c = int(np.argmax(l[i]))  # first maximum
        d = [(l[i, c] - l[i, j]) / np.linalg.norm(W[c] - W[j]) for j in range(K) if j != c]
        out.append(np.mean(d) / np.linalg.norm(z[i] - mu))
    return np.array(out)


def keep_mask(x, p):
    """The k = n - round(n p / 100) largest entries of each row (at least one), ties to the lower index."""
    n = x.shape[1]
    k = max(1, n - int(np.floor(n * p / 100.0 + 0.5)))
    mask = np.zeros_like(x, dtype=bool)
    for i in range(len(x)):
        order = np.argsort(-x[i], kind="stable")
        mask[i, order[:k]] = True
    return mask, k


# ASH (Djurisic et al., ICLR 2023, Sec. 3): prune all but the top entries; -P leaves them,
# -B sets each to (sum before pruning) / k, -S multiplies them by exp(sum before / sum after). Energy after.
def ash(z, p, variant):
    mask, k = keep_mask(z, p)
    s1 = z.sum(axis=1, keepdims=True)
    pruned = np.where(mask, z, 0.0)
    if variant == "p":
        shaped = pruned
    elif variant == "b":
        shaped = np.where(mask, s1 / k, 0.0)
    else:
        s2 = pruned.sum(axis=1, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            r = np.where(s2 > 0, np.exp(s1 / np.where(s2 > 0, s2, 1.0)), 1.0)
        shaped = pruned * r
    return energy(shaped)


# SCALE (Xu et al., ICLR 2024, Eq. 4): the whole feature scaled by exp(sum / sum of the top entries). Energy after.
def scale(z, p):
    mask, _ = keep_mask(z, p)
    s1 = z.sum(axis=1, keepdims=True)
    s2 = np.where(mask, z, 0.0).sum(axis=1, keepdims=True)
    r = np.where(s2 > 0, np.exp(s1 / np.where(s2 > 0, s2, 1.0)), 1.0)
    return energy(z * r)


# RMDS (Ren et al., 2021, Eq. 3-4): -min_k [MD_k(z) - MD_0(z)], class Gaussians with the shared
# (biased) covariance, background Gaussian of all training features.
def rmds(z):
    means = np.stack([train[labels == k].mean(axis=0) for k in range(K)])
    centred = train - means[labels]
    cov = centred.T @ centred / N_TRAIN
    mu0 = train.mean(axis=0)
    cov0 = (train - mu0).T @ (train - mu0) / N_TRAIN
    inv, inv0 = np.linalg.inv(cov), np.linalg.inv(cov0)
    out = []
    for x in z:
        md = [(x - m) @ inv @ (x - m) for m in means]
        md0 = (x - mu0) @ inv0 @ (x - mu0)
        out.append(-min(v - md0 for v in md))
    return np.array(out)


# NNGuide (Park et al., ICCV 2023, Eq. 3-5): energy of the query times the mean of its k largest
# cosine similarities to the training features, each scaled by that training sample's energy.
def nnguide(z, k):
    def unit(x):
        return x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-10)
    bank = unit(train) * energy(train)[:, None]
    sims = unit(z) @ bank.T
    top = -np.sort(-sims, axis=1)[:, :k]
    return energy(z) * top.mean(axis=1)


# ViM (Wang et al., CVPR 2022, Sec. 3): origin u = -pinv(W) b; principal subspace of the
# training features centred at u (top `dim` eigenvectors of X'^T X' / N); virtual logit
# alpha * ||residual||, alpha = mean max logit / mean residual norm on the training set;
# score = logsumexp(logits) - virtual logit.
def vim(z, dim):
    u = -np.linalg.pinv(W) @ b
    xc = train - u
    vals, vecs = np.linalg.eigh(xc.T @ xc / N_TRAIN)
    ns = vecs[:, np.argsort(vals)[::-1][dim:]]
    res_train = np.linalg.norm(xc @ ns, axis=1)
    alpha = logits_of(train).max(axis=1).mean() / res_train.mean()
    return energy(z) - alpha * np.linalg.norm((z - u) @ ns, axis=1)


mu = train.mean(axis=0)
fixture = {
    "num_classes": K, "feature_dim": D,
    "train_features": train.tolist(), "train_labels": labels.tolist(),
    "test_features": test.tolist(), "weight": W.tolist(), "bias": b.tolist(),
    "test_logits": logits_of(test).tolist(),
    "gen": {f"{g}_{m}": gen(logits_of(test), g, m).tolist() for g in (0.1, 1.0) for m in (2, 4)},
    "fdbd": fdbd(test, mu).tolist(),
    "ash": {f"{v}_{p}": ash(test, p, v).tolist() for v in ("p", "b", "s") for p in (50, 65, 90)},
    "scale": {str(p): scale(test, p).tolist() for p in (50, 65, 90)},
    "rmds": rmds(test).tolist(),
    "nnguide": {str(k): nnguide(test, k).tolist() for k in (1, 5, 40)},
    "vim": {str(d): vim(test, d).tolist() for d in (2, 3)},
}
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "detectors.json"), "w") as f:
    json.dump(fixture, f, indent=1)
print("wrote detectors.json")
