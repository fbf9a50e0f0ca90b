"""Check that a safetensors file written by our Swift writer loads in the reference Python library
with bit-identical values and the same metadata as make_fixture.expected_tensors()/METADATA.

Usage: python check_ours.py PATH   (exit status 0 = identical, 1 = difference, message on stderr)

Produce PATH with:
    SAFETENSORS_INTEROP_OUT=/tmp/ours.safetensors swift test --filter SafeTensorsTests.InteropTests
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_fixture import METADATA, expected_tensors  # noqa: E402


def bits(array):
    """View as unsigned integers of the same width so NaN payloads and -0.0 compare exactly."""
    return array.view({4: np.uint32, 8: np.uint64}[array.dtype.itemsize])


def main():
    from safetensors import safe_open
    from safetensors.numpy import load_file

    path = sys.argv[1]
    loaded = load_file(path)
    with safe_open(path, framework="numpy") as handle:
        metadata = handle.metadata()
    expected = expected_tensors()
    problems = []
    if sorted(loaded) != sorted(expected):
        problems.append(f"names: expected {sorted(expected)}, got {sorted(loaded)}")
    for name, want in expected.items():
        got = loaded.get(name)
        if got is None:
            continue
        if got.dtype != want.dtype or got.shape != want.shape:
            problems.append(f"{name}: expected {want.dtype}{list(want.shape)}, got {got.dtype}{list(got.shape)}")
        elif not np.array_equal(bits(got), bits(want)):
            problems.append(f"{name}: values differ: expected {want.ravel()}, got {got.ravel()}")
    if metadata != METADATA:
        problems.append(f"metadata: expected {METADATA}, got {metadata}")
    with open(path, "rb") as f:
        header_length = int.from_bytes(f.read(8), "little")
    if header_length % 8 != 0:
        problems.append(f"header length {header_length} is not a multiple of 8")
    for line in problems:
        print("MISMATCH " + line, file=sys.stderr)
    if problems:
        return 1
    print(f"OK: {path}: {len(loaded)} tensors and {len(metadata)} metadata entries bit-identical "
          f"(safetensors {__import__('safetensors').__version__})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
