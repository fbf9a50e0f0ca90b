#!/usr/bin/env python3
"""Verifies a built offline benchmark against its manifest: every file's sha256 and size, every
IDX file's magic, dims and count, label range; optionally writes one contact sheet per set
(64 samples, 8x8 grid, 2x upscaled) as PNG for a visual check.

Usage: .venv-data/bin/python launch/data/check_benchmark.py [--data data] [--sheets DIR]
Exit status 1 with a message naming the file on the first mismatch.
"""
import argparse
import gzip
import hashlib
import json
import os
import struct
import sys

import numpy as np


def fail(msg):
    print(f"[check-data] error: {msg}. Hint: rerun launch/prepare-data.sh --force", file=sys.stderr)
    sys.exit(1)


def read_idx_gz(path, expected_magic):
    raw = gzip.open(path).read()
    magic = struct.unpack(">I", raw[:4])[0]
    if magic != expected_magic:
        fail(f"{path}: magic 0x{magic:08x}, expected 0x{expected_magic:08x}")
    ndim = magic & 0xFF
    dims = struct.unpack(">" + "I" * ndim, raw[4:4 + 4 * ndim])
    data = np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        fail(f"{path}: dims {dims} need {int(np.prod(dims))} bytes, found {data.size}")
    return data.reshape(dims)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="data")
    ap.add_argument("--sheets", default=None, help="directory for contact-sheet PNGs")
    args = ap.parse_args()
    manifest = json.load(open(os.path.join(args.data, "manifest.json")))
    n_files = 0
    for entry in manifest["sets"] + manifest["folders"]:
        for f in entry["files"]:
            path = os.path.join(args.data, f["path"])
            if not os.path.isfile(path):
                fail(f"{path} listed in the manifest is missing")
            blob = open(path, "rb").read()
            if hashlib.sha256(blob).hexdigest() != f["sha256"] or len(blob) != f["bytes"]:
                fail(f"{path}: sha256/size differ from the manifest")
            if "raw_sha256" in f and hashlib.sha256(gzip.decompress(blob)).hexdigest() != f["raw_sha256"]:
                fail(f"{path}: sha256 of the decompressed IDX differs from raw_sha256")
            n_files += 1
    for s in manifest["sets"]:
        paths = [os.path.join(args.data, f["path"]) for f in s["files"]]
        images = read_idx_gz(next(p for p in paths if "images-idx3" in p), 0x00000803)
        if images.shape != (s["count"], 28, 28):
            fail(f"{s['name']}/{s['split']}: images {images.shape}, manifest count {s['count']}")
        labels = None
        label_paths = [p for p in paths if "labels-idx1" in p]
        if s["has_labels"]:
            labels = read_idx_gz(label_paths[0], 0x00000801)
            if labels.shape != (s["count"],):
                fail(f"{label_paths[0]}: {labels.shape[0]} labels for {s['count']} images")
            if labels.max() >= len(s["class_names"]):
                fail(f"{label_paths[0]}: label {labels.max()} >= {len(s['class_names'])} classes")
        counts = "" if labels is None else " per-class " + ",".join(
            str(c) for c in np.bincount(labels, minlength=len(s["class_names"])))
        border = np.concatenate([images[:, 0, :], images[:, -1, :], images[:, :, 0], images[:, :, -1]], axis=1)
        print(f"{s['name']:<15} {s['split']:<5} n={s['count']:<6} mean={images.mean():6.1f} "
              f"border-mean={border.mean():6.1f} centre-mean={images[:, 10:18, 10:18].mean():6.1f}{counts}")
        if args.sheets:
            from PIL import Image
            os.makedirs(args.sheets, exist_ok=True)
            k = min(64, len(images))
            grid = np.zeros((8 * 30, 8 * 30), np.uint8) + 128
            for i in range(k):
                r, c = divmod(i, 8)
                grid[r * 30 + 1:r * 30 + 29, c * 30 + 1:c * 30 + 29] = images[i]
            Image.fromarray(grid).resize((480, 480), Image.Resampling.NEAREST).save(
                os.path.join(args.sheets, f"{s['name']}-{s['split']}.png"))
    print(f"[check-data] ok: {n_files} files match manifest sha256s; all IDX files parse")


if __name__ == "__main__":
    main()
