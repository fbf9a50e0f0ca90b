#!/usr/bin/env python3
"""Checks of launch/convert-torch-checkpoint.py (needs torch, numpy, safetensors):

    /tmp/venv-torch/bin/python Tests/Fixtures/densenet-parity/check_converter.py [REFERENCE.state]

Runs the converter on the UM reference checkpoint and on re-saved variants of it (bare state
dict, under 'model', under 'net', nn.Module-free DDP prefix twice, float64 and float16 copies,
an extra unknown key, a `normalizer.*` buffer, a missing key) and asserts exit codes, written
names, dtypes, values and metadata. Every conversion runs twice, with --reader torch and with
--reader zip (the torch-free reader), and the two must give the same exit code and the same output
file, byte for byte. The written file must also equal, byte for byte, what the `safetensors`
package's save_file writes for the same tensors (after putting its metadata keys in sorted order,
which it varies from run to run). Exits non-zero on the first failure.
"""
import json
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np
import torch
from safetensors.numpy import load_file, save_file
from safetensors import safe_open

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
CONVERTER = os.path.join(ROOT, "launch", "convert-torch-checkpoint.py")
REF = sys.argv[1] if len(sys.argv) > 1 else "/work/shared/reference/um-densenet-bc100-cifar10.state"


def convert(reader, inp, out, *extra, arch="densenet_bc100"):
    p = subprocess.run([sys.executable, CONVERTER, inp, out, "--arch", arch, "--reader", reader, *extra],
                       capture_output=True, text=True)
    return p.returncode, p.stderr


def run(inp, out, *extra):
    """Converts with the torch reader and with the zip reader; asserts the same exit code and the
    same bytes written; returns the torch reader's (exit code, stderr)."""
    zip_out = out + ".zip-reader"
    if os.path.exists(zip_out):
        os.remove(zip_out)
    rc_z, err_z = convert("zip", inp, zip_out, *extra)
    rc, err = convert("torch", inp, out, *extra)
    assert rc == rc_z, (inp, extra, rc, rc_z, err, err_z)
    if rc == 0:
        with open(out, "rb") as a, open(zip_out, "rb") as b:
            assert a.read() == b.read(), f"{inp}: torch and zip readers wrote different files"
        assert_safetensors_layout(out)
    else:
        assert not os.path.exists(zip_out), err_z
    return rc, err


def assert_safetensors_layout(path):
    """The file equals what safetensors.numpy.save_file writes for its tensors and metadata, with
    the metadata keys in sorted order."""
    tensors = load_file(path)
    with safe_open(path, "numpy") as f:
        md = f.metadata()
    ref = path + ".package"
    save_file(tensors, ref, metadata=md)
    with open(ref, "rb") as f:
        raw = f.read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    header["__metadata__"] = {k: header["__metadata__"][k] for k in sorted(header["__metadata__"])}
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "rb") as f:
        assert f.read() == struct.pack("<Q", len(text)) + text + raw[8 + n:], f"{path}: layout differs from safetensors'"


def main():
    ck = torch.load(REF, map_location="cpu", weights_only=True)
    sd = {k[len("module."):]: v for k, v in ck["state_dict"].items()}
    tmp = tempfile.mkdtemp()
    out = os.path.join(tmp, "out.safetensors")

    # 1. The reference file itself.
    rc, err = run(REF, out)
    assert rc == 0, err
    got = load_file(out)
    assert sorted(got) == sorted(sd), "names differ from the stripped state dict"
    for k, v in sd.items():
        a = got[k]
        if k.endswith("num_batches_tracked"):
            assert a.dtype == np.int64 and a.shape == () and int(a) == int(v), k
        else:
            assert a.dtype == np.float32 and np.array_equal(a, v.numpy()), k
    with safe_open(out, "numpy") as f:
        md = f.metadata()
    assert md["umtrain.arch"] == "densenet_bc100" and md["format"] == "pt", md
    section = json.loads(md["umtrain.model"])
    assert section == {"arch": "densenet_bc100", "batch_norm": "non_affine", "dropout": 0.0, "image_size": 32,
                       "in_channels": 3, "num_classes": 10, "width": 32}, section

    def variant(obj, name):
        p = os.path.join(tmp, name)
        torch.save(obj, p)
        return p

    # 2. Containers and prefixes.
    for obj, name in [(sd, "bare.pt"), ({"model": sd, "epoch": 3}, "model.pt"), ({"net": sd}, "net.pt"),
                      ({"state_dict": {"module.module." + k: v for k, v in sd.items()}}, "ddp2.pt")]:
        rc, err = run(variant(obj, name), out)
        assert rc == 0, (name, err)
        assert sorted(load_file(out)) == sorted(sd), name

    # 3. float64 / float16 weights become float32 (values rounded as torch's .float()).
    for dt in [torch.float64, torch.float16]:
        conv = {k: (v.to(dt) if v.is_floating_point() else v) for k, v in sd.items()}
        rc, err = run(variant(conv, f"{dt}.pt"), out)
        assert rc == 0, err
        got = load_file(out)
        assert got["fc.weight"].dtype == np.float32
        assert np.array_equal(got["fc.weight"], conv["fc.weight"].float().numpy()), dt

    # 4. Stateless normalizer entries are dropped silently.
    rc, err = run(variant({**sd, "normalizer.mean": torch.zeros(3)}, "norm.pt"), out)
    assert rc == 0 and "1 normalizer entries dropped" in err, err

    # 5. An unknown key: strict fails naming it and writes nothing; --no-strict writes the rest.
    os.remove(out)
    rc, err = run(variant({**sd, "head.extra": torch.zeros(2)}, "extra.pt"), out)
    assert rc == 1 and "unmapped: head.extra" in err and not os.path.exists(out), (rc, err)
    rc, err = run(variant({**sd, "head.extra": torch.zeros(2)}, "extra.pt"), out, "--no-strict")
    assert rc == 0 and "head.extra" not in load_file(out), err

    # 6. A missing key is reported by name; affine BN asked for a non-affine file fails.
    less = dict(sd)
    del less["trans2.conv1.weight"]
    rc, err = run(variant(less, "less.pt"), out)
    assert rc == 1 and "missing: trans2.conv1.weight" in err, err
    rc, err = run(REF, out, "--batch-norm", "affine")
    assert rc == 1 and "missing: bn1.weight" in err, err

    # 7. A whole pickled nn.Module under 'net' (needs --unsafe-load) for an arch without a name
    #    list here (resnet18): names pass through, K and C are read from the weights.
    #    (A ModuleDict, so the pickle refers only to torch classes.)
    tiny = torch.nn.ModuleDict({"conv1": torch.nn.Conv2d(3, 4, 3, bias=False), "bn1": torch.nn.BatchNorm2d(4),
                                "fc": torch.nn.Linear(4, 7)})
    torch.save({"net": tiny}, os.path.join(tmp, "module.pt"))
    #    The zip reader reads the module's parameters and buffers without --unsafe-load (it runs no
    #    code from the file) and writes the same file.
    rc, err = convert("torch", os.path.join(tmp, "module.pt"), out, arch="resnet18")
    assert rc == 2 and "--unsafe-load" in err, err
    rc, err = convert("zip", os.path.join(tmp, "module.pt"), out + ".zip-reader", arch="resnet18")
    assert rc == 0, err
    rc, err = convert("torch", os.path.join(tmp, "module.pt"), out, "--unsafe-load", arch="resnet18")
    assert rc == 0, err
    with open(out, "rb") as a, open(out + ".zip-reader", "rb") as b:
        assert a.read() == b.read(), "pickled module: torch and zip readers wrote different files"
    assert sorted(load_file(out)) == sorted(tiny.state_dict()), sorted(load_file(out))
    with safe_open(out, "numpy") as f:
        section = json.loads(f.metadata()["umtrain.model"])
    assert (section["num_classes"], section["in_channels"], section["batch_norm"]) == (7, 3, "affine"), section

    # 8. Not a checkpoint of a state dict.
    rc, err = run(variant({"epoch": 1}, "nostate.pt"), out)
    assert rc == 2 and "no state dict found" in err, err
    print("convert-torch-checkpoint: all checks passed")


if __name__ == "__main__":
    main()
