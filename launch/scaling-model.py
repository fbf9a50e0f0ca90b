#!/usr/bin/env python3
"""Predicted time per epoch and scaling efficiency past this machine (issue 19;
docs/performance.md "A scaling model").

Inputs: docs/results/scaling-inputs.json (launch/scaling-measure.sh: one rank, one thread,
training img/s at per-rank batches 2..128) and the communication costs measured here
(launch/mpirun.sh / launch/bench-shaped.sh, bench comm --latency over the namespace TCP bridge).

Model of one optimizer step on W ranks at global batch B (per-rank batch b = B / W):
  compute(b)  = b / img_per_s(b)                        (measured; interpolated in log b)
  gradient    = 2 (W-1) alpha + 2 (W-1)/W * bytes / beta (ring allreduce of every gradient)
  batchnorm   = 2 L ceil(log2 W) (alpha + 8 (2C+1) / beta) (sync BN: one small allreduce per
                BatchNorm layer in forward and one in backward, recursive doubling; C ~ 256)
  step        = compute + batchnorm + gradient           (allreduce after backward)
  step_overlap= compute + batchnorm + max(0, gradient - 0.66 compute)   (backward is about 2/3 of
                the step; with small buckets nearly all of it can hide the allreduce, as measured)
Epoch = ceil(N / B) steps. Efficiency = (the fastest one-rank epoch: N / the best measured img/s
at any per-rank batch) / (W x the W-rank epoch, overlapped), so it is at most 1.
Waiting for stragglers at the sync points is not modelled (measured here: it, not transfer,
is most of sync BN's cost on 2 ranks); real efficiencies will be lower.
"""
import json, math, sys

ALPHA = 14e-6          # s per message step: TCP, measured over the namespace bridge (28 us for a 2-rank allreduce)
LINKS = {"10 Gbit/s": 10e9 / 8, "100 Gbit/s": 100e9 / 8}
DATASETS = {"densenet_bc100": ("CIFAR-10 DenseNet-BC-100", 50_000), "resnet50": ("ImageNet ResNet-50", 1_281_167)}

def throughput(points, b):
    xs = sorted((int(k), v) for k, v in points.items() if v)
    if b <= xs[0][0]:
        return xs[0][1] * b / xs[0][0]          # below the smallest measured batch: same time per step
    if b >= xs[-1][0]:
        return xs[-1][1]
    for (b0, v0), (b1, v1) in zip(xs, xs[1:]):
        if b0 <= b <= b1:
            t = (math.log(b) - math.log(b0)) / (math.log(b1) - math.log(b0))
            return v0 + t * (v1 - v0)

def step_times(model, W, B, beta):
    b = B / W
    compute = b / throughput(model["images_per_second"], b)
    bytes_ = 4 * model["parameters"]
    grad = 0 if W == 1 else 2 * (W - 1) * ALPHA + 2 * (W - 1) / W * bytes_ / beta
    bn = 0 if W == 1 else 2 * model["batchnorm_layers"] * math.ceil(math.log2(W)) * (ALPHA + 8 * 513 / beta)
    return compute + bn + grad, compute + bn + max(0.0, grad - 0.66 * compute), compute, bn, grad

def main():
    inputs = json.load(open(sys.argv[1] if len(sys.argv) > 1 else "docs/results/scaling-inputs.json"))
    out = []
    for arch, (title, n) in DATASETS.items():
        m = inputs[arch]
        out.append(f"\n#### {title} ({m['parameters']:,} parameters, {m['batchnorm_layers']} BatchNorm layers, {n:,} images per epoch)\n")
        for B in (256, 1024):
            for link, beta in LINKS.items():
                best = max(v for v in m["images_per_second"].values() if v)
                one_epoch = n / best
                out.append(f"\nGlobal batch {B}, {link}: epoch time (after backward / overlapped), efficiency, and the step's parts\n")
                out.append("| ranks | per-rank batch | epoch (s) | overlapped (s) | efficiency | compute ms | BN sync ms | gradient allreduce ms |")
                out.append("|---|---|---|---|---|---|---|---|")
                for W in (1, 2, 4, 8, 16, 32, 64, 128, 256):
                    if B / W < 1:
                        break
                    step, over, c, bn, g = step_times(m, W, B, beta)
                    steps = math.ceil(n / B)
                    eff = one_epoch / (W * steps * over)
                    out.append(f"| {W} | {B / W:g} | {steps * step:,.0f} | {steps * over:,.0f} | {eff:.2f} | {1e3 * c:.1f} | {1e3 * bn:.2f} | {1e3 * g:.2f} |")
    print("\n".join(out))

if __name__ == "__main__":
    main()
