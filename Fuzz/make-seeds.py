#!/usr/bin/env python3
"""Writes the small seed corpora of the fuzz targets into Fuzz/Corpus/<target>/.

Standard library only, except the JPEG seeds, which need Pillow (pip install pillow); without
it the JPEG folder is left as it is. The files are committed; re-run this only to change them.
Every seed is a valid or nearly valid input of its reader, so the fuzzer starts past the
magic numbers and headers.
"""
import gzip
import io
import json
import os
import shutil
import struct
import zlib

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "Corpus")


def put(target, name, data):
    folder = os.path.join(ROOT, target)
    os.makedirs(folder, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)


def reset(target):
    shutil.rmtree(os.path.join(ROOT, target), ignore_errors=True)


def idx_images(count, rows, cols, fill=lambda i: i % 256):
    return struct.pack(">IIII", 0x803, count, rows, cols) + bytes(fill(i) for i in range(count * rows * cols))


def idx_labels(labels):
    return struct.pack(">II", 0x801, len(labels)) + bytes(labels)


def gz(data, level=6):
    return gzip.compress(data, compresslevel=level, mtime=0)


# IDX, raw.
reset("idx")
put("idx", "images-2x3x2", idx_images(2, 3, 2))
put("idx", "images-1x1x1", idx_images(1, 1, 1))
put("idx", "labels-5", idx_labels([0, 1, 9, 3, 4]))
put("idx", "labels-empty", idx_labels([]))

# IDX through gzip.
reset("idx-gzip")
put("idx-gzip", "images.gz", gz(idx_images(2, 3, 2)))
put("idx-gzip", "labels.gz", gz(idx_labels([0, 1, 9, 3, 4])))
put("idx-gzip", "labels-two-members.gz", gz(idx_labels([1, 2])[:5]) + gz(idx_labels([1, 2])[5:]))
put("idx-gzip", "empty-member-then-labels.gz", gz(b"") + gz(idx_labels([7])))
put("idx-gzip", "stored-block.gz", gz(idx_labels([5, 6, 7]), level=0))
# Decompresses to exactly one 256 KiB output chunk of FileBytes (an edge of its inflate loop).
put("idx-gzip", "labels-256KiB.gz", gz(idx_labels([0] * (262144 - 8)), level=9))

# CIFAR: one CIFAR-10 record (3073 bytes), one CIFAR-100 record (3074 bytes), a meta file.
reset("cifar")
pixels = bytes((i * 7) % 256 for i in range(3072))
put("cifar", "cifar10-record", bytes([3]) + pixels)
put("cifar", "cifar100-record", bytes([4, 42]) + pixels)
put("cifar", "batches.meta.txt", "airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n\n")

# CSV images (2x2 pixels plus a label).
reset("csv-images")
put("csv-images", "label-last.csv", "0,255,128,7,3\n12,13,14,15,9\r\n")
put("csv-images", "label-first-header.csv", "label,p0,p1,p2,p3\n1,0,16,8.5,1.6e1\n2, 3 ,4,5,6\n")

# PNG, written here chunk by chunk.
def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png(width, height, bit_depth, color_type, rows, extra=b"", interlace=0):
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, interlace)
    raw = b"".join(b"\x00" + r for r in rows)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + extra + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


reset("png")
put("png", "gray8-4x3.png", png(4, 3, 8, 0, [bytes([r * 40 + c * 10 for c in range(4)]) for r in range(3)]))
put("png", "gray1-8x2.png", png(8, 2, 1, 0, [b"\xa5", b"\x5a"]))
put("png", "gray16-2x2.png", png(2, 2, 16, 0, [b"\x12\x34\xff\xff", b"\x00\x00\x80\x01"]))
put("png", "rgb8-3x2.png", png(3, 2, 8, 2, [bytes(range(9)), bytes(range(100, 109))]))
put("png", "rgba8-2x2.png", png(2, 2, 8, 6, [b"\x10\x20\x30\x40\x50\x60\x70\x00", b"\xff\x00\x00\xff\x00\xff\x00\x80"]))
put("png", "graya8-2x1.png", png(2, 1, 8, 4, [b"\x40\xff\x80\x00"]))
put("png", "rgb16-1x2.png", png(1, 2, 16, 2, [b"\x01\x02\x03\x04\x05\x06", b"\xff\xfe\xfd\xfc\xfb\xfa"]))
put("png", "rgba16-1x1.png", png(1, 1, 16, 6, [b"\x80\x00\x40\x00\x20\x00\x7f\xff"]))
put("png", "palette-trns-3x1.png", png(3, 1, 8, 3, [b"\x00\x01\x02"],
                                       extra=chunk(b"PLTE", b"\xff\x00\x00\x00\xff\x00\x00\x00\xff") + chunk(b"tRNS", b"\xff\x80")))
put("png", "rgb-gama-chrm-iccp.png", png(2, 1, 8, 2, [b"\x10\x20\x30\x40\x50\x60"],
                                         extra=chunk(b"gAMA", struct.pack(">I", 45455))
                                         + chunk(b"cHRM", struct.pack(">8I", 31270, 32900, 64000, 33000, 30000, 60000, 15000, 6000))
                                         + chunk(b"iCCP", b"icc\x00\x00" + zlib.compress(b"\x00" * 16))))
# Adam7-interlaced 3x3 gray: passes 1..7 hold pixels (0,0); -; (0,? none)...: build them.
def adam7(width, height, pixel):
    passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
    out = b""
    for x0, y0, dx, dy in passes:
        xs = list(range(x0, width, dx))
        ys = list(range(y0, height, dy))
        if not xs or not ys:
            continue
        for y in ys:
            out += b"\x00" + bytes(pixel(x, y) for x in xs)
    return out


ihdr = struct.pack(">IIBBBBB", 3, 3, 8, 0, 0, 0, 1)
put("png", "gray8-interlaced-3x3.png", b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
    + chunk(b"IDAT", zlib.compress(adam7(3, 3, lambda x, y: 20 * x + 70 * y))) + chunk(b"IEND", b""))

# JPEG through Pillow (libjpeg-turbo), when it is installed.
try:
    from PIL import Image

    reset("jpeg")
    rgb = Image.new("RGB", (16, 12))
    rgb.putdata([((x * 16) % 256, (y * 20) % 256, (x * y * 3) % 256) for y in range(12) for x in range(16)])

    def jpeg(image, **options):
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", **options)
        return buffer.getvalue()

    put("jpeg", "rgb-420-q50.jpg", jpeg(rgb, quality=50))
    put("jpeg", "rgb-444-q90.jpg", jpeg(rgb, quality=90, subsampling=0))
    put("jpeg", "rgb-progressive.jpg", jpeg(rgb, quality=60, progressive=True))
    put("jpeg", "gray-q75.jpg", jpeg(rgb.convert("L"), quality=75))
    put("jpeg", "cmyk.jpg", jpeg(rgb.convert("CMYK"), quality=60))
    put("jpeg", "rgb-restart.jpg", jpeg(rgb, quality=40, restart_marker_blocks=1))
    put("jpeg", "rgb-optimized-1x1.jpg", jpeg(Image.new("RGB", (1, 1), (200, 10, 30)), optimize=True))
except ImportError:
    print("Pillow not installed: JPEG seeds left as they are")

# safetensors: the 8-byte little-endian header length, the JSON header, the data.
def safetensors(header, data):
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


reset("safetensors")
put("safetensors", "f32-i64-metadata.safetensors", safetensors(
    {"__metadata__": {"format": "pt", "arch": "cnn5"},
     "conv.weight": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]},
     "bn.num_batches_tracked": {"dtype": "I64", "shape": [], "data_offsets": [16, 24]}},
    struct.pack("<4f", 1.0, -2.5, 0.0, 3.25) + struct.pack("<q", 7)))
put("safetensors", "bf16-u8-empty.safetensors", safetensors(
    {"a": {"dtype": "BF16", "shape": [3], "data_offsets": [0, 6]},
     "b": {"dtype": "U8", "shape": [2, 1], "data_offsets": [6, 8]},
     "c": {"dtype": "F32", "shape": [0, 4], "data_offsets": [8, 8]}},
    b"\x80\x3f\x00\x40\x00\x00\x01\x02"))
put("safetensors", "escaped-name.safetensors", safetensors(
    {"layer\u00e9.\\\"w\"": {"dtype": "F64", "shape": [1], "data_offsets": [0, 8]}}, struct.pack("<d", 1.5)))

# Score files.
reset("scores")
put("scores", "plain.txt", "0.8731\n-12.5e-3\n3\n")
put("scores", "crlf-blank-spaces.txt", "  1.5\r\n\r\n\t-2\r\n1e308\n")
put("scores", "non-finite.txt", "nan\ninf\n-inf\n0x1p-3\n")

# YAML run configurations (lines "#set key=value" become --set overrides in the harness).
reset("config")
configs = os.path.join(os.path.dirname(ROOT), "..", "configs")
for name in ("fmnist-quick.yaml", "fmnist-train.yaml"):
    with open(os.path.join(configs, name), "rb") as f:
        put("config", name, f.read())
put("config", "small-with-overrides.yaml",
    "name: fz\nseed: 3\nmodel:\n  arch: lenet\ntrain:\n  epochs: 2\n  batch_size: 32\n"
    "#set train.lr=0.05\n#set evaluate.scores=[msp,energy]\n")
put("config", "reference-keys.yaml", "prune_rate: 0.5\nbn_type: NonAffineBatchNorm\nseed: 1\n")
put("config", "empty.yaml", "")

# Checkpoint COMPLETE marker and state.json.
reset("checkpoint")
put("checkpoint", "COMPLETE", json.dumps({
    "step": 120, "written_at": "2026-12-06T10:00:00Z",
    "files": {"state.json": {"bytes": 2, "fnv1a64": "c2ab6e0e5b54e0c2"},
              "model.safetensors": {"bytes": 1024, "fnv1a64": "0"}}}, indent=2, sort_keys=True))
put("checkpoint", "state.json", json.dumps({
    "epoch": 1, "step_in_epoch": 3, "global_step": 120, "world_size": 2, "seed": 0,
    "momentum_initialized": True, "rng": "counter-based", "config_yaml": "name: run\n",
    "data_fingerprint": "abc", "train_count": 100, "validation_count": 10}, indent=2, sort_keys=True))

# estimate.json and atypical.csv.
reset("estimate")
put("estimate", "estimate.json", json.dumps({
    "xi": 0.21, "keep_ratio": 0.5, "mask_seed": 3, "rule": "flip", "count": 4, "atypical_count": 1,
    "atypical_per_class": [1, 0], "train_loss": 0.1, "train_accuracy": 0.99, "heldout_loss": None,
    "heldout_count": 0, "calibrated": False, "calibration_note": "no held-out split",
    "ratios": [{"keep_ratio": 0.5, "xi_per_mask": [0.2, 0.21], "mask_seeds": [1, 3], "mean": 0.205,
                "median": 0.2, "min": 0.2, "max": 0.21, "std": 0.005, "masked_accuracy_per_mask": [0.9, 0.91]}],
    "mask_checksum": "deadbeef", "world_size": 2}, indent=2, sort_keys=True))
put("estimate", "atypical.csv",
    "id,label,loss,masked_loss,predicted,masked_predicted,atypical\n0,1,0.01,2.5,1,0,1\n1,0,1e-3,0.002,0,0,0\n")
