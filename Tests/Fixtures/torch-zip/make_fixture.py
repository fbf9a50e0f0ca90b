#!/usr/bin/env python3
"""Generate the torch-free zip reader's fixtures with real PyTorch (run once; outputs committed).

    /tmp/venv-torch/bin/python Tests/Fixtures/torch-zip/make_fixture.py

Writes next to this script (a few KB in all), for Tests/Import/test_torchzip.py:

  dtypes.pt    torch.save of {'epoch': 7, 'best_acc1': 91.5, 'arch': 'tiny', 'sizes': torch.Size,
               'state_dict': OrderedDict with 'module.'-prefixed names}: float32, float64, float16,
               bfloat16, int64 (a num_batches_tracked scalar), int32, int16, int8, uint8, bool and
               complex64 tensors, an nn.Parameter, views that share one storage (a transposed
               weight, a slice at a storage offset, a strided column), an empty tensor and a 0-d
               float; plus an optimizer-like nested dict
  module.pt    torch.save({'net': nn.ModuleDict(conv1, bn1, fc), 'epoch': 1}): a whole pickled
               module (torch.load needs weights_only=False for it)
  legacy.pt    the same state dict with _use_new_zipfile_serialization=False (the non-zip format
               the reader refuses)
  layout.safetensors  a few numpy arrays (several dtypes, a 0-d one, names out of order) written by
               the `safetensors` package's save_file with one metadata key, to compare our writer's bytes
  expected.json  per file and tensor: dtype, shape and the values (flat, row-major; float values
               as Python floats, exact for every dtype here; complex as [re, im] pairs)
"""
import collections
import json
import os

import numpy as np
import torch
from safetensors.numpy import save_file

HERE = os.path.dirname(os.path.abspath(__file__))


def values(t):
    flat = t.detach().reshape(-1)
    if t.dtype.is_complex:
        return [[float(z.real), float(z.imag)] for z in flat.tolist()]
    if t.dtype == torch.bfloat16 or t.dtype == torch.float16:
        return [float(x) for x in flat.float().tolist()]
    return flat.tolist()


def describe(sd):
    return {k: {"dtype": str(v.dtype).replace("torch.", ""), "shape": list(v.shape), "values": values(v)}
            for k, v in sd.items()}


def layout_arrays():
    """The arrays of layout.safetensors (the test builds the same ones)."""
    return {"b.weight": np.arange(6, dtype=np.float32).reshape(2, 3) / 7, "a.steps": np.array(42, dtype=np.int64),
            "z.half": np.array([1.5, -2], dtype=np.float16), "a.weight": np.array([3.25], dtype=np.float32),
            "c.f64": np.array([1e-300, 2.0]), "m.mask": np.array([True, False]), "i.idx": np.arange(3, dtype=np.int32),
            "u.bytes": np.array([1, 2, 250], dtype=np.uint8)}


def main():
    g = torch.Generator().manual_seed(15)
    shared = torch.randn(40, generator=g)                 # one storage, three views below
    w = torch.randn(4, 3, 3, 3, generator=g)
    sd = collections.OrderedDict()
    sd["module.conv1.weight"] = w
    sd["module.bn1.running_mean"] = torch.randn(4, generator=g)
    sd["module.bn1.running_var"] = torch.rand(4, generator=g) + 0.5
    sd["module.bn1.num_batches_tracked"] = torch.tensor(1234, dtype=torch.int64)
    sd["module.fc.weight"] = shared[:28].view(4, 7).t()   # [7, 4], strides (1, 7): not contiguous
    sd["module.fc.bias"] = shared[28:35]                  # storage offset 28
    sd["module.col"] = shared[:40].view(8, 5)[:, 2]       # stride 5, offset 2
    sd["module.f64"] = torch.randn(2, 3, generator=g, dtype=torch.float64)
    sd["module.f16"] = torch.randn(5, generator=g).half()
    sd["module.bf16"] = torch.randn(2, 2, generator=g).bfloat16()
    sd["module.i32"] = torch.arange(-3, 3, dtype=torch.int32)
    sd["module.i16"] = torch.tensor([-300, 7], dtype=torch.int16)
    sd["module.i8"] = torch.tensor([-5, 100], dtype=torch.int8)
    sd["module.u8"] = torch.tensor([0, 255, 17], dtype=torch.uint8)
    sd["module.mask"] = torch.tensor([True, False, True])
    sd["module.c64"] = torch.tensor([1 + 2j, -0.5j], dtype=torch.complex64)
    sd["module.param"] = torch.nn.Parameter(torch.randn(3, generator=g))
    sd["module.empty"] = torch.zeros(0, 3)
    sd["module.scalar"] = torch.tensor(2.5)
    ck = {"epoch": 7, "best_acc1": 91.5, "arch": "tiny", "sizes": torch.Size([7, 4]), "state_dict": sd,
          "optimizer": {"state": {0: {"momentum_buffer": torch.ones(2)}}, "param_groups": [{"lr": 0.1}]}}
    torch.save(ck, os.path.join(HERE, "dtypes.pt"))
    torch.save(sd, os.path.join(HERE, "legacy.pt"), _use_new_zipfile_serialization=False)

    torch.manual_seed(0)
    net = torch.nn.ModuleDict({"conv1": torch.nn.Conv2d(3, 4, 3, bias=False), "bn1": torch.nn.BatchNorm2d(4),
                               "fc": torch.nn.Linear(4, 7)})
    net.bn1.register_buffer("scratch", torch.ones(2), persistent=False)   # not in the state dict
    torch.save({"net": net, "epoch": 1}, os.path.join(HERE, "module.pt"))

    save_file(layout_arrays(), os.path.join(HERE, "layout.safetensors"), metadata={"format": "pt"})

    expected = {"torch": torch.__version__,
                "dtypes.pt": describe(sd),
                "dtypes.pt optimizer momentum_buffer": describe({"m": ck["optimizer"]["state"][0]["momentum_buffer"]})["m"],
                "module.pt": describe(net.state_dict())}
    with open(os.path.join(HERE, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
        f.write("\n")
    print("wrote dtypes.pt, module.pt, legacy.pt, expected.json in", HERE)


if __name__ == "__main__":
    main()
