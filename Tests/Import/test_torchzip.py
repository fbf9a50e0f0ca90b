#!/usr/bin/env python3
"""Unit tests of the torch-free PyTorch checkpoint reader (launch/torchzip.py) and of
launch/convert-torch-checkpoint.py with it. Needs Python 3 and numpy; no torch, no shared files.

    python3 Tests/Import/test_torchzip.py        (launch/test-import.sh runs it)

Two kinds of input:
  - checkpoints written by real PyTorch 2.13 (Tests/Fixtures/torch-zip/*.pt, made by
    make_fixture.py there; the expected names, dtypes, shapes and values in expected.json);
  - checkpoints assembled here byte by byte in the torch.save zip layout (pickle opcodes written
    by hand), for the cases PyTorch does not write on this machine (another archive folder name,
    big-endian data, _rebuild_tensor_v3) and for damaged or hostile files.
"""
import json
import os
import struct
import subprocess
import sys
import tempfile
import unittest
import zipfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
FIXTURES = os.path.join(ROOT, "Tests", "Fixtures", "torch-zip")
CONVERTER = os.path.join(ROOT, "launch", "convert-torch-checkpoint.py")
sys.path.insert(0, os.path.join(ROOT, "launch"))
import torchzip  # noqa: E402

with open(os.path.join(FIXTURES, "expected.json")) as _f:
    EXPECTED = json.load(_f)


def fixture(name):
    return os.path.join(FIXTURES, name)


def flat_values(t):
    """A reader tensor's values as expected.json stores them."""
    a = t.to_float32() if t.dtype == "bfloat16" else t.numpy()
    vals = a.reshape(-1).tolist()
    if t.dtype.startswith("complex"):
        vals = [[z.real, z.imag] for z in vals]
    return vals


def read_safetensors(path):
    """(header dict without __metadata__, metadata, {name: array}) of a safetensors file."""
    codes = {"F32": "<f4", "F64": "<f8", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2", "I8": "i1",
             "U8": "u1", "BOOL": "?"}
    with open(path, "rb") as f:
        raw = f.read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__", {})
    data = raw[8 + n:]
    arrays = {k: np.frombuffer(data[v["data_offsets"][0]:v["data_offsets"][1]], dtype=codes[v["dtype"]])
              .reshape(v["shape"]) for k, v in header.items()}
    return header, meta, arrays


# ---------------------------------------------------------------- a hand-written torch.save archive
class Pickle:
    """Assembles protocol-2 pickle opcodes, as torch.save's pickler emits them."""

    def __init__(self):
        self.b = bytearray(b"\x80\x02")

    def op(self, code):
        self.b += code
        return self

    def glob(self, module, name):
        return self.op(b"c" + f"{module}\n{name}\n".encode())

    def str(self, s):
        e = s.encode()
        return self.op(b"X" + struct.pack("<I", len(e)) + e)

    def int(self, i):
        return self.op(b"J" + struct.pack("<i", i))

    def ints(self, values):   # a tuple of ints
        self.op(b"(")
        for v in values:
            self.int(v)
        return self.op(b"t")

    def storage(self, storage_type, key, numel):
        # persistent id ('storage', torch.<storage_type>, key, location, numel)
        self.op(b"(").str("storage").glob("torch", storage_type).str(key).str("cpu").int(numel).op(b"t")
        return self.op(b"Q")

    def tensor_v2(self, storage_type, key, numel, offset, size, stride):
        self.glob("torch._utils", "_rebuild_tensor_v2").op(b"(")
        self.storage(storage_type, key, numel).int(offset).ints(size).ints(stride)
        self.op(b"\x89").glob("collections", "OrderedDict").op(b")R")   # requires_grad False, hooks {}
        return self.op(b"tR")

    def tensor_v3(self, key, nbytes, offset, size, stride, dtype):
        self.glob("torch._utils", "_rebuild_tensor_v3").op(b"(")
        self.storage("UntypedStorage", key, nbytes).int(offset).ints(size).ints(stride)
        self.op(b"\x89").glob("collections", "OrderedDict").op(b")R").glob("torch", dtype)
        return self.op(b"tR")

    def bytes(self):
        return bytes(self.b + b".")


def write_archive(path, pickle_bytes, records, prefix="archive", byteorder="little"):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr(f"{prefix}/data.pkl", pickle_bytes)
        for key, data in records.items():
            z.writestr(f"{prefix}/data/{key}", data)
        if byteorder is not None:
            z.writestr(f"{prefix}/byteorder", byteorder)
        z.writestr(f"{prefix}/version", "3\n")


def handbuilt_state_dict(p, weight_key="0", weight_numel=12):
    """{'state_dict': OrderedDict(module.w: f32 [2, 3] view at offset 2 with strides (1, 3)
    (a transpose) of storage 0, module.steps: i64 [] of storage 1, module.u16: uint16 [3] over an
    untyped storage 2)}."""
    p.op(b"}").str("state_dict").glob("collections", "OrderedDict").op(b")R(")
    p.str("module.w").tensor_v2("FloatStorage", weight_key, weight_numel, 2, [2, 3], [1, 3])
    p.str("module.steps").tensor_v2("LongStorage", "1", 1, 0, [], [])
    p.str("module.u16").tensor_v3("2", 6, 0, [3], [1], "uint16")
    return p.op(b"u").op(b"s")


class TorchWrittenFixtures(unittest.TestCase):
    """Files written by torch.save (PyTorch 2.13) and their recorded contents."""

    def test_names_dtypes_shapes_values_of_every_dtype(self):
        ck = torchzip.load(fixture("dtypes.pt"))
        sd = ck["state_dict"]
        expected = EXPECTED["dtypes.pt"]
        self.assertEqual(list(sd), list(expected), "names and order")
        for name, t in sd.items():
            e = expected[name]
            with self.subTest(name=name):
                self.assertIsInstance(t, torchzip.Tensor)
                self.assertEqual(t.dtype, e["dtype"])
                self.assertEqual(list(t.shape), e["shape"])
                self.assertEqual(flat_values(t), e["values"])
                self.assertEqual(list(t.numpy().shape), e["shape"])
                self.assertTrue(t.numpy().flags["C_CONTIGUOUS"])

    def test_views_share_one_storage(self):
        sd = torchzip.load(fixture("dtypes.pt"))["state_dict"]
        w, b, col = sd["module.fc.weight"], sd["module.fc.bias"], sd["module.col"]
        self.assertIs(w.storage, b.storage)
        self.assertIs(w.storage, col.storage)
        self.assertEqual((w.offset, w.stride, b.offset, col.offset, col.stride), (0, (1, 7), 28, 2, (5,)))

    def test_other_entries_and_floating_flags(self):
        ck = torchzip.load(fixture("dtypes.pt"))
        self.assertEqual((ck["epoch"], ck["best_acc1"], ck["arch"], ck["sizes"]), (7, 91.5, "tiny", (7, 4)))
        m = ck["optimizer"]["state"][0]["momentum_buffer"]
        self.assertEqual(flat_values(m), EXPECTED["dtypes.pt optimizer momentum_buffer"]["values"])
        self.assertEqual(ck["optimizer"]["param_groups"], [{"lr": 0.1}])
        sd = ck["state_dict"]
        floating = {k for k, t in sd.items() if t.is_floating_point}
        self.assertEqual(floating, {k for k, e in EXPECTED["dtypes.pt"].items()
                                    if e["dtype"] in ("float32", "float64", "float16", "bfloat16")})
        self.assertTrue(sd["module.param"].requires_grad)
        self.assertFalse(sd["module.conv1.weight"].requires_grad)

    def test_to_float32_rounds_like_torch(self):
        sd = torchzip.load(fixture("dtypes.pt"))["state_dict"]
        for name in ["module.f64", "module.f16", "module.bf16", "module.conv1.weight"]:
            a = sd[name].to_float32()
            self.assertEqual(a.dtype, np.float32)
            want = np.array(EXPECTED["dtypes.pt"][name]["values"], dtype=np.float64).astype(np.float32)
            self.assertTrue(np.array_equal(a.reshape(-1), want), name)
        with self.assertRaises(torchzip.CheckpointError):
            sd["module.i32"].to_float32()

    def test_pickled_module_gives_its_state_dict(self):
        ck = torchzip.load(fixture("module.pt"))
        self.assertTrue(torchzip.is_module(ck["net"]))
        self.assertIn("ModuleDict", ck["net"].global_name)
        sd = torchzip.module_state_dict(ck["net"])
        expected = EXPECTED["module.pt"]
        self.assertEqual(list(sd), list(expected), "PyTorch's state_dict order; the non-persistent buffer left out")
        for name, t in sd.items():
            self.assertEqual((t.dtype, list(t.shape), flat_values(t)),
                             (expected[name]["dtype"], expected[name]["shape"], expected[name]["values"]), name)

    def test_legacy_format_is_refused_with_a_hint(self):
        with self.assertRaises(torchzip.CheckpointError) as cm:
            torchzip.load(fixture("legacy.pt"))
        msg = str(cm.exception)
        self.assertIn("legacy.pt", msg)
        self.assertIn("legacy non-zip format", msg)
        self.assertIn("hint:", msg)

    def test_writer_matches_the_safetensors_package_byte_for_byte(self):
        arrays = {"b.weight": np.arange(6, dtype=np.float32).reshape(2, 3) / 7, "a.steps": np.array(42, dtype=np.int64),
                  "z.half": np.array([1.5, -2], dtype=np.float16), "a.weight": np.array([3.25], dtype=np.float32),
                  "c.f64": np.array([1e-300, 2.0]), "m.mask": np.array([True, False]),
                  "i.idx": np.arange(3, dtype=np.int32), "u.bytes": np.array([1, 2, 250], dtype=np.uint8)}
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "w.safetensors")
            torchzip.write_safetensors(out, arrays, metadata={"format": "pt"})
            with open(out, "rb") as a, open(fixture("layout.safetensors"), "rb") as b:
                self.assertEqual(a.read(), b.read())


class HandBuiltArchives(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)

    def path(self, name):
        return os.path.join(self.tmp.name, name)

    def records(self, byteorder="<"):
        return {"0": struct.pack(f"{byteorder}12f", *[i / 4 for i in range(12)]),
                "1": struct.pack(f"{byteorder}q", 99),
                "2": struct.pack(f"{byteorder}3H", 1, 513, 65535)}

    def check_handbuilt(self, ck):
        sd = ck["state_dict"]
        self.assertEqual(list(sd), ["module.w", "module.steps", "module.u16"])
        w = sd["module.w"]
        self.assertEqual((w.dtype, w.shape), ("float32", (2, 3)))
        # offset 2, strides (1, 3): w[i][j] = storage[2 + i + 3j] = (2 + i + 3j) / 4
        self.assertEqual(w.numpy().tolist(), [[0.5, 1.25, 2.0], [0.75, 1.5, 2.25]])
        self.assertEqual((sd["module.steps"].dtype, sd["module.steps"].numpy().shape, int(sd["module.steps"].numpy())),
                         ("int64", (), 99))
        self.assertEqual((sd["module.u16"].dtype, sd["module.u16"].numpy().tolist()), ("uint16", [1, 513, 65535]))

    def test_handbuilt_layout_little_endian_any_folder_name(self):
        write_archive(self.path("a.pt"), handbuilt_state_dict(Pickle()).bytes(), self.records(), prefix="my-model")
        self.check_handbuilt(torchzip.load(self.path("a.pt")))

    def test_big_endian_records_are_byteswapped(self):
        write_archive(self.path("b.pt"), handbuilt_state_dict(Pickle()).bytes(), self.records(">"), byteorder="big")
        self.check_handbuilt(torchzip.load(self.path("b.pt")))

    def test_no_byteorder_record_means_little_endian(self):
        write_archive(self.path("c.pt"), handbuilt_state_dict(Pickle()).bytes(), self.records(), byteorder=None)
        self.check_handbuilt(torchzip.load(self.path("c.pt")))

    def test_unknown_globals_are_inert(self):
        marker = self.path("pwned")
        p = Pickle().op(b"}").str("state_dict").op(b"}").str("w").tensor_v2("FloatStorage", "0", 12, 0, [12], [1])
        p.op(b"s").str("x").glob("posix", "system").op(b"(").str(f"touch {marker}").op(b"tR")
        p.op(b"s").op(b"s")
        write_archive(self.path("evil.pt"), p.bytes(), self.records())
        ck = torchzip.load(self.path("evil.pt"))
        self.assertFalse(os.path.exists(marker), "os.system ran")
        self.assertIsInstance(ck["state_dict"]["x"], torchzip.Opaque)
        self.assertEqual(ck["state_dict"]["x"].global_name, "posix.system")
        self.assertEqual(ck["state_dict"]["w"].numpy().size, 12)

    def test_truncated_storage_is_an_error_naming_the_record(self):
        recs = self.records()
        recs["0"] = recs["0"][:40]
        write_archive(self.path("t.pt"), handbuilt_state_dict(Pickle()).bytes(), recs)
        sd = torchzip.load(self.path("t.pt"))["state_dict"]
        with self.assertRaisesRegex(torchzip.CheckpointError, r"data/0: the pickle says 12 values, the record holds 10"):
            sd["module.w"].numpy()

    def test_view_past_the_storage_is_an_error(self):
        write_archive(self.path("v.pt"), handbuilt_state_dict(Pickle(), weight_numel=12).bytes(),
                      {**self.records(), "0": struct.pack("<6f", *range(6))})
        sd = torchzip.load(self.path("v.pt"))["state_dict"]
        with self.assertRaises(torchzip.CheckpointError):
            sd["module.w"].numpy()

    def test_missing_storage_record_is_an_error(self):
        recs = self.records()
        del recs["1"]
        write_archive(self.path("m.pt"), handbuilt_state_dict(Pickle()).bytes(), recs)
        sd = torchzip.load(self.path("m.pt"))["state_dict"]
        with self.assertRaisesRegex(torchzip.CheckpointError, r"archive/data/1, which is not in the archive"):
            sd["module.steps"].numpy()

    def test_unsupported_dtypes_load_but_refuse_their_values(self):
        p = Pickle().op(b"}").str("q").tensor_v2("QInt8Storage", "0", 4, 0, [4], [1])
        p.op(b"s").str("f8").tensor_v3("1", 4, 0, [4], [1], "float8_e4m3fn").op(b"s")
        write_archive(self.path("q.pt"), p.bytes(), {"0": b"\x01\x02\x03\x04", "1": b"\x01\x02\x03\x04"})
        ck = torchzip.load(self.path("q.pt"))
        self.assertEqual((ck["q"].dtype, ck["f8"].dtype, ck["f8"].is_floating_point), ("qint8", "float8_e4m3fn", True))
        for name in ["q", "f8"]:
            with self.assertRaisesRegex(torchzip.CheckpointError, r"dtype \S+ is not supported .*\n.*hint: "):
                ck[name].numpy()

    def test_files_that_are_not_torch_zip_checkpoints(self):
        with zipfile.ZipFile(self.path("script.pt"), "w") as z:
            z.writestr("m/data.pkl", b"\x80\x02}.")
            z.writestr("m/constants.pkl", b"\x80\x02).")
            z.writestr("m/code/__torch__.py", "")
        with zipfile.ZipFile(self.path("other.zip"), "w") as z:
            z.writestr("readme.txt", "hello")
        with open(self.path("text.pt"), "w") as f:
            f.write("not a checkpoint\n")
        cases = {"script.pt": "TorchScript", "other.zip": "0 data.pkl records", "text.pt": "expected a PyTorch zip",
                 "absent.pt": "no such file"}
        for name, needle in cases.items():
            with self.subTest(name=name):
                with self.assertRaises(torchzip.CheckpointError) as cm:
                    torchzip.load(self.path(name))
                self.assertIn(needle, str(cm.exception))
                self.assertIn(name, str(cm.exception))


class ConverterWithoutTorch(unittest.TestCase):
    """launch/convert-torch-checkpoint.py --reader zip on the PyTorch-written fixtures."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)
        self.out = os.path.join(self.tmp.name, "out.safetensors")

    def run_converter(self, src, *extra):
        p = subprocess.run([sys.executable, CONVERTER, fixture(src), self.out, "--reader", "zip", *extra],
                           capture_output=True, text=True)
        return p.returncode, p.stderr

    def test_pickled_module_to_resnet18(self):
        rc, err = self.run_converter("module.pt", "--arch", "resnet18")
        self.assertEqual(rc, 0, err)
        self.assertIn("['net'].state_dict() (zip reader)", err)
        header, meta, arrays = read_safetensors(self.out)
        expected = EXPECTED["module.pt"]
        self.assertEqual(sorted(arrays), sorted(expected))
        for name, e in expected.items():
            want = np.array(e["values"], dtype=np.int64 if name.endswith("num_batches_tracked") else np.float32)
            self.assertTrue(np.array_equal(arrays[name].reshape(-1), want.reshape(-1)), name)
        self.assertEqual(header["bn1.num_batches_tracked"]["shape"], [])
        self.assertEqual((meta["umtrain.arch"], meta["format"]), ("resnet18", "pt"))
        section = json.loads(meta["umtrain.model"])
        self.assertEqual((section["num_classes"], section["in_channels"], section["batch_norm"]), (7, 3, "affine"))

    def test_dtypes_strict_and_no_strict(self):
        rc, err = self.run_converter("dtypes.pt", "--arch", "resnet18")
        self.assertEqual(rc, 1, err)
        for line in ["unmapped: module.i32: dtype int32", "unmapped: module.mask: dtype bool",
                     "unmapped: module.c64: dtype complex64"]:
            self.assertIn(line, err)
        self.assertFalse(os.path.exists(self.out))
        rc, err = self.run_converter("dtypes.pt", "--arch", "resnet18", "--no-strict")
        self.assertEqual(rc, 0, err)
        header, _, arrays = read_safetensors(self.out)
        exp = EXPECTED["dtypes.pt"]
        for name in ["fc.weight", "fc.bias", "col", "f64", "f16", "bf16", "param", "scalar", "empty"]:
            want = np.array(exp["module." + name]["values"], dtype=np.float64).astype(np.float32)
            self.assertEqual(header[name]["dtype"], "F32", name)
            self.assertEqual(header[name]["shape"], exp["module." + name]["shape"], name)
            self.assertTrue(np.array_equal(arrays[name].reshape(-1), want), name)
        self.assertEqual((header["bn1.num_batches_tracked"]["dtype"], header["bn1.num_batches_tracked"]["shape"],
                          int(arrays["bn1.num_batches_tracked"])), ("I64", [], 1234))
        self.assertNotIn("i32", arrays)

    def test_legacy_file_exit_2_with_hint(self):
        rc, err = self.run_converter("legacy.pt", "--arch", "resnet18")
        self.assertEqual(rc, 2, err)
        self.assertIn("legacy non-zip format", err)
        self.assertIn("hint:", err)
        self.assertFalse(os.path.exists(self.out))

    def test_torch_reader_without_torch_says_how_to_do_without(self):
        try:
            import torch  # noqa: F401
            self.skipTest("torch is importable here")
        except ImportError:
            pass
        rc, err = self.run_converter("module.pt", "--arch", "resnet18", "--reader", "torch")
        self.assertEqual(rc, 2, err)
        self.assertIn("--reader zip", err)


if __name__ == "__main__":
    unittest.main(verbosity=2)
