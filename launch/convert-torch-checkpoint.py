#!/usr/bin/env python3
"""Convert a PyTorch checkpoint into a umtrain safetensors weights file.

    convert-torch-checkpoint.py IN.pt OUT.safetensors --arch ARCH
        [--reader auto|torch|zip] [--num-classes K] [--in-channels C] [--image-size S]
        [--batch-norm affine|non_affine] [--dropout P] [--width W]
        [--no-strict] [--unsafe-load]

ARCH is one of densenet_bc100, resnet50, wrn40_2, resnet18, resnet20.

PyTorch is NOT a dependency of umtrain, nor of this script: it needs Python 3 and numpy. It reads
the checkpoint with one of two readers (--reader, default auto: torch when importable, else zip):
  torch  torch.load (needs PyTorch); also reads the legacy non-zip format of PyTorch < 1.6;
  zip    launch/torchzip.py, next to this script: reads the zip format of torch.save (PyTorch >=
         1.6) with the standard library's zipfile and pickle and numpy; runs no code from the file.
Both give the same output file, byte for byte.

What it does (see docs/import.md):
  1. Loads IN.pt on the CPU (torch: `map_location="cpu"`, `weights_only=True` unless --unsafe-load).
  2. Finds the state dict: the object itself when it maps names to tensors, otherwise the
     entry `state_dict`, `model_state_dict`, `model`, `net` or `module` (a pickled nn.Module there
     gives its state dict).
  3. Strips `module.` (nn.DataParallel / DDP) and `_orig_mod.` (torch.compile) prefixes.
  4. Drops non-tensor entries and entries of the stateless input `normalizer` (the UM reference
     normalises inside the model; umtrain normalises outside, in the data pipeline).
  5. Maps names. For every listed architecture our names equal the PyTorch ones (the UM
     reference / OOD-detection definitions for densenet_bc100, wrn40_2, resnet20; torchvision for
     resnet18 / resnet50), so the map is the identity after steps 3-4.
  6. Converts floating tensors to float32 and `num_batches_tracked` to int64 (shape []).
  7. For densenet_bc100, wrn40_2 and resnet20 checks the names against the expected list for
     our model (missing and unexpected keys are reported; shapes are checked by umtrain when it
     loads the file). Strict mode (default) exits 1 when anything could not be mapped or is
     missing.
  8. Writes OUT.safetensors with our metadata: `umtrain.arch`, `umtrain.model` (JSON with the
     ModelSection keys arch, batch_norm, dropout, image_size, in_channels, num_classes, width)
     and `format: pt`, laid out as the `safetensors` package writes it (metadata keys sorted).

Exit codes: 0 written; 1 keys left over or missing in strict mode (nothing written); 2 unusable
input (missing Python package, unreadable or unsupported file, no state dict, unsupported dtype).
"""
import argparse
import json
import os
import re
import sys

ARCHS = ["densenet_bc100", "resnet50", "wrn40_2", "resnet18", "resnet20"]
STATE_KEYS = ["state_dict", "model_state_dict", "model", "net", "module"]
PREFIXES = ["module.", "_orig_mod."]
NUMPY_HINT = ("hint: install it for this interpreter (`{py} -m pip install numpy`), or use a venv:\n"
              "  python3 -m venv ~/.venvs/umtrain-import && ~/.venvs/umtrain-import/bin/pip install numpy\n"
              "and run this script with ~/.venvs/umtrain-import/bin/python.")
TORCH_HINT = ("hint: leave --reader at auto or pass --reader zip to convert without PyTorch (zip checkpoints "
              "of PyTorch >= 1.6), or install a CPU build of torch for this interpreter (docs/import.md).")


def fail(msg, code=2):
    print(f"convert-torch-checkpoint: {msg}", file=sys.stderr)
    sys.exit(code)


def import_numpy():
    try:
        import numpy
    except ImportError:
        fail(f"this converter needs numpy, which {sys.executable} cannot import.\n"
             + NUMPY_HINT.format(py=sys.executable))
    return numpy


def import_torchzip():
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import torchzip
    return torchzip


def torch_importable():
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


# ---------------------------------------------------------------- expected names of our models
def _bn(prefix, affine):
    names = [f"{prefix}.running_mean", f"{prefix}.running_var", f"{prefix}.num_batches_tracked"]
    return names + ([f"{prefix}.weight", f"{prefix}.bias"] if affine else [])


def expected_densenet_bc100(affine, growth=12, depth=100, reduction=0.5):
    n = (depth - 4) // 6
    c = 2 * growth
    names = ["conv1.weight"]
    for b in range(1, 4):
        for i in range(n):
            p = f"block{b}.layer.{i}"
            names += _bn(f"{p}.bn1", affine) + [f"{p}.conv1.weight"] + _bn(f"{p}.bn2", affine) + [f"{p}.conv2.weight"]
            c += growth
        if b < 3:
            names += _bn(f"trans{b}.bn1", affine) + [f"trans{b}.conv1.weight"]
            c = int(c * reduction)
    return names + _bn("bn1", affine) + ["fc.weight", "fc.bias"]


def expected_wrn(affine, depth=40, widen=2):
    n = (depth - 4) // 6
    widths = [16 * widen, 32 * widen, 64 * widen]
    names = ["conv1.weight"]
    cin = 16
    for g, w in enumerate(widths):
        for b in range(n):
            p = f"block{g + 1}.layer.{b}"
            names += _bn(f"{p}.bn1", affine) + [f"{p}.conv1.weight"] + _bn(f"{p}.bn2", affine) + [f"{p}.conv2.weight"]
            if (cin if b == 0 else w) != w:
                names.append(f"{p}.convShortcut.weight")
        cin = w
    return names + _bn("bn1", affine) + ["fc.weight", "fc.bias"]


def expected_resnet20(affine):
    names = ["conv1.weight"] + _bn("bn1", affine)
    for s in range(1, 4):
        for b in range(3):
            p = f"layer{s}.{b}"
            names += [f"{p}.conv1.weight"] + _bn(f"{p}.bn1", affine) + [f"{p}.conv2.weight"] + _bn(f"{p}.bn2", affine)
    return names + ["linear.weight", "linear.bias"]


EXPECTED = {"densenet_bc100": expected_densenet_bc100, "wrn40_2": expected_wrn, "resnet20": expected_resnet20}

# Name map: PyTorch name -> our name. Identity for every listed architecture (our model
# definitions use the PyTorch attribute names); kept as a table so a future architecture whose
# names differ only adds entries here. Entries are (PyTorch prefix, our prefix).
NAME_MAP = {arch: [] for arch in ARCHS}


def map_name(arch, name):
    for theirs, ours in NAME_MAP[arch]:
        if name.startswith(theirs):
            return ours + name[len(theirs):]
    return name


# ---------------------------------------------------------------- readers
class TorchReader:
    """torch.load; tensors are torch.Tensor."""
    name = "torch"

    def __init__(self, np):
        try:
            import torch
        except ImportError:
            fail(f"--reader torch: PyTorch is not importable by {sys.executable}.\n{TORCH_HINT}")
        self.torch, self.np = torch, np

    def load(self, path, unsafe):
        torch = self.torch
        try:
            return torch.load(path, map_location="cpu", weights_only=not unsafe)
        except FileNotFoundError:
            fail(f"{path}: no such file.\nhint: check the path.")
        except Exception as e:  # noqa: BLE001 - report torch's reason verbatim
            hint = ("hint: the file pickles objects other than tensors and plain containers; if you trust "
                    "it, rerun with --unsafe-load, or read it with --reader zip, which runs no code from the "
                    "file." if not unsafe else "hint: is this a PyTorch checkpoint?")
            reason = re.sub(r"\x1b\[[0-9;]*m", "", str(e)).strip().splitlines()
            fail(f"{path}: torch.load failed: {type(e).__name__}: {reason[0] if reason else ''}\n{hint}")

    def is_tensor(self, v):
        return self.torch.is_tensor(v)

    def is_module(self, v):
        return isinstance(v, self.torch.nn.Module)

    def module_state_dict(self, v):
        return v.state_dict()

    def dtype(self, t):
        return str(t.dtype).replace("torch.", "")

    def is_floating(self, t):
        return t.is_floating_point()

    def numel(self, t):
        return t.numel()

    def float32(self, name, t):
        return self.np.array(t.detach().cpu().to(self.torch.float32).numpy(), order="C")  # keeps shape []

    def int64_scalar(self, name, t):
        return self.np.asarray(t.detach().cpu().to(self.torch.int64).reshape(()).numpy(), dtype=self.np.int64)


class ZipReader:
    """launch/torchzip.py; tensors are torchzip.Tensor."""
    name = "zip"

    def __init__(self, np):
        self.tz, self.np = import_torchzip(), np

    def load(self, path, unsafe):
        try:
            return self.tz.load(path)
        except self.tz.CheckpointError as e:
            fail(str(e))

    def is_tensor(self, v):
        return isinstance(v, self.tz.Tensor)

    def is_module(self, v):
        return self.tz.is_module(v)

    def module_state_dict(self, v):
        return self.tz.module_state_dict(v)

    def dtype(self, t):
        return t.dtype

    def is_floating(self, t):
        return t.is_floating_point

    def numel(self, t):
        return t.numel

    def float32(self, name, t):
        try:
            return t.to_float32()
        except self.tz.CheckpointError as e:
            fail(f"{name}: {e}")

    def int64_scalar(self, name, t):
        try:
            a = t.to_float32() if t.is_floating_point else t.numpy()
        except self.tz.CheckpointError as e:
            fail(f"{name}: {e}")
        return self.np.asarray(a.astype(self.np.int64).reshape(()), dtype=self.np.int64)


def find_state_dict(reader, obj, source):
    def is_state(d):
        return isinstance(d, dict) and len(d) > 0 and any(reader.is_tensor(v) for v in d.values())

    if reader.is_module(obj):
        return reader.module_state_dict(obj), "<module>.state_dict()"
    if isinstance(obj, dict):
        for k in STATE_KEYS:
            v = obj.get(k)
            if reader.is_module(v):
                return reader.module_state_dict(v), f"['{k}'].state_dict()"
            if is_state(v):
                return v, f"['{k}']"
        if is_state(obj):
            return obj, "<top level>"
        top = ", ".join(f"{k!r}: {type(v).__name__}" for k, v in list(obj.items())[:12])
        fail(f"{source}: no state dict found; expected a dict of tensors or one under "
             f"{', '.join(STATE_KEYS)}, found keys {{{top}}}.\nhint: load the file in Python and "
             f"save `model.state_dict()` with torch.save.")
    fail(f"{source}: the checkpoint holds a {type(obj).__name__}, expected a dict or nn.Module.\n"
         f"hint: save `model.state_dict()` with torch.save.")


def strip_prefixes(name):
    changed = True
    while changed:
        changed = False
        for p in PREFIXES:
            if name.startswith(p):
                name = name[len(p):]
                changed = True
    return name


def infer_batch_norm(names):
    bn = [n[: -len(".running_mean")] for n in names if n.endswith(".running_mean")]
    if not bn:
        return None
    has_weight = [f"{p}.weight" in names for p in bn]
    if all(has_weight):
        return "affine"
    if not any(has_weight):
        return "non_affine"
    fail("BatchNorm layers are mixed affine / non-affine; umtrain models use one kind.\n"
         "hint: pass --batch-norm to choose, and check the unmapped-key report.")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("input", help="PyTorch checkpoint (.pt/.pth/.state)")
    ap.add_argument("output", help="safetensors file to write")
    ap.add_argument("--arch", required=True, choices=ARCHS)
    ap.add_argument("--reader", choices=["auto", "torch", "zip"], default="auto",
                    help="torch.load, or the torch-free zip reader (default auto: torch when importable)")
    ap.add_argument("--num-classes", type=int, help="default: rows of the final linear weight")
    ap.add_argument("--in-channels", type=int, help="default: input channels of conv1")
    ap.add_argument("--image-size", type=int, help="default: 224 for resnet50, else 32")
    ap.add_argument("--batch-norm", choices=["affine", "non_affine"], help="default: inferred from the keys")
    ap.add_argument("--dropout", type=float, default=0.0, help="dropout recorded in the metadata (default 0)")
    ap.add_argument("--width", type=int, default=32, help="ModelSection.width recorded (used by cnn5 only)")
    ap.add_argument("--no-strict", action="store_true", help="write the file even with unmapped/missing keys")
    ap.add_argument("--unsafe-load", action="store_true",
                    help="torch reader: torch.load(weights_only=False), only for checkpoints you trust "
                         "(arbitrary pickles); the zip reader never runs code from the file")
    args = ap.parse_args(argv)

    np = import_numpy()
    kind = args.reader
    if kind == "auto":
        kind = "torch" if torch_importable() else "zip"
    reader = TorchReader(np) if kind == "torch" else ZipReader(np)
    obj = reader.load(args.input, args.unsafe_load)
    sd, where = find_state_dict(reader, obj, args.input)

    tensors = {}
    unmapped = []   # (original name, reason)
    dropped = []    # stateless normalizer entries
    for raw, v in sd.items():
        name = strip_prefixes(raw)
        if name.startswith("normalizer.") or name == "normalizer":
            dropped.append(raw)
            continue
        if not reader.is_tensor(v):
            unmapped.append((raw, f"not a tensor ({type(v).__name__})"))
            continue
        ours = map_name(args.arch, name)
        if name.endswith("num_batches_tracked"):
            if reader.numel(v) != 1:
                unmapped.append((raw, f"{reader.numel(v)} values; a BatchNorm step count is one number"))
                continue
            arr = reader.int64_scalar(f"{args.input}: {raw}", v)
        elif reader.is_floating(v):
            arr = reader.float32(f"{args.input}: {raw}", v)
        else:
            unmapped.append((raw, f"dtype {reader.dtype(v)} (only floating tensors and num_batches_tracked are weights)"))
            continue
        if ours in tensors:
            unmapped.append((raw, f"duplicate of '{ours}' after prefix stripping"))
            continue
        tensors[ours] = arr

    bn = args.batch_norm or infer_batch_norm(set(tensors)) or "affine"
    missing = []
    if args.arch in EXPECTED:
        expected = EXPECTED[args.arch](bn == "affine")
        exp_set = set(expected)
        missing = [n for n in expected if n not in tensors]
        for n in [n for n in tensors if n not in exp_set]:
            unmapped.append((n, f"not a state entry of our {args.arch} ({bn} BatchNorm)"))
            del tensors[n]
    else:
        print(f"note: no expected-name list for {args.arch} here; names are passed through and checked "
              f"when umtrain loads the file.", file=sys.stderr)

    first_conv = tensors.get("conv1.weight")
    head = next((tensors[k] for k in ["fc.weight", "linear.weight"] if k in tensors), None)
    section = {
        "arch": args.arch,
        "batch_norm": bn,
        "dropout": args.dropout,
        "image_size": args.image_size or (224 if args.arch == "resnet50" else 32),
        "in_channels": args.in_channels or (int(first_conv.shape[1]) if first_conv is not None else 3),
        "num_classes": args.num_classes or (int(head.shape[0]) if head is not None else 10),
        "width": args.width,
    }
    if head is not None and int(head.shape[0]) != section["num_classes"]:
        unmapped.append(("--num-classes", f"{section['num_classes']} given, the final layer has {head.shape[0]} rows"))
    if first_conv is not None and int(first_conv.shape[1]) != section["in_channels"]:
        unmapped.append(("--in-channels", f"{section['in_channels']} given, conv1 takes {first_conv.shape[1]}"))

    print(f"read {len(sd)} entries from {args.input} {where} ({reader.name} reader); {len(tensors)} tensors kept, "
          f"{len(dropped)} normalizer entries dropped", file=sys.stderr)
    for raw, why in unmapped:
        print(f"unmapped: {raw}: {why}", file=sys.stderr)
    for n in missing:
        print(f"missing: {n}", file=sys.stderr)
    if (unmapped or missing) and not args.no_strict:
        fail(f"{len(unmapped)} unmapped and {len(missing)} missing key(s); nothing written to {args.output}.\n"
             f"hint: check --arch / --batch-norm, or pass --no-strict to write the mapped subset.", code=1)

    metadata = {"umtrain.arch": args.arch,
                "umtrain.model": json.dumps(section, sort_keys=True, separators=(",", ":")),
                "format": "pt"}
    try:
        import_torchzip().write_safetensors(args.output, tensors, metadata=metadata)
    except OSError as e:
        fail(f"{args.output}: cannot write ({e.strerror}).\nhint: check the folder exists and is writable.")
    n_params = sum(int(a.size) for k, a in tensors.items() if a.dtype == np.float32)
    print(f"wrote {args.output}: {len(tensors)} tensors, {n_params} float32 values, model {metadata['umtrain.model']}",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
