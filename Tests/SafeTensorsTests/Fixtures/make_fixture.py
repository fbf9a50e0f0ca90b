"""Generate reference.safetensors with the reference Python library (huggingface/safetensors).

Usage (from any directory, in a venv with `pip install safetensors numpy`; torch not needed):
    python make_fixture.py            # writes reference.safetensors next to this script

`expected_tensors()` and `METADATA` are also imported by check_ours.py, so both directions of
the interop check compare against the same values. SafeTensorsTests.swift hard-codes the same
values (built the same way) to check that our reader loads this file exactly.
"""
import os
import sys

import numpy as np

METADATA = {
    "architecture": "resnet18",
    "num_classes": "10",
    "note": "µ-ü \"quoted\" \\ slash\nnewline",
}


def f32_bits(bits):
    return np.array(bits, dtype=np.uint32).view(np.float32)


def expected_tensors():
    return {
        # 4-D conv weight [C_out, C_in, kH, kW]: values (i - 12) / 8, exact in binary.
        "conv1.weight": ((np.arange(24, dtype=np.float32) - 12) / 8).reshape(2, 3, 2, 2),
        # 1-D with a non-dyadic value and a subnormal.
        "fc.bias": np.array([0.1, -2.5, 3e-39], dtype=np.float32),
        # scalar (shape []).
        "scale": np.array(1.5, dtype=np.float32),
        # special bit patterns: NaN with payload, -0.0, smallest subnormal, +inf, -max.
        "specials": f32_bits([0x7FC00001, 0x80000000, 0x00000001, 0x7F800000, 0xFF7FFFFF]),
        # I64 scalar, as PyTorch stores BatchNorm's num_batches_tracked.
        "bn1.num_batches_tracked": np.array(12345678901234, dtype=np.int64),
        # I64 extremes.
        "indices": np.array([np.iinfo(np.int64).min, -1, 0, np.iinfo(np.int64).max], dtype=np.int64),
        # zero-size tensor.
        "empty": np.zeros((0, 3), dtype=np.float32),
    }


def main():
    from safetensors.numpy import save_file

    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "reference.safetensors")
    save_file(expected_tensors(), out, metadata=METADATA)
    print(f"wrote {out} ({os.path.getsize(out)} bytes)", file=sys.stderr)


if __name__ == "__main__":
    main()
