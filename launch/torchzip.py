"""Read PyTorch zip checkpoints without PyTorch: the Python standard library and numpy only.

`torch.save` (PyTorch >= 1.6) writes a zip archive:

    PREFIX/data.pkl          the pickled object (protocol 2); every tensor in it refers to a storage
                             by a persistent id ('storage', <storage type>, KEY, LOCATION, NUMEL)
    PREFIX/data/KEY          the raw bytes of storage KEY (little-endian unless PREFIX/byteorder
                             says "big")
    PREFIX/byteorder, PREFIX/version, PREFIX/.format_version, ...   small text records

and a tensor is pickled as a call `torch._utils._rebuild_tensor_v2(storage, offset, size, stride,
requires_grad, hooks[, metadata])` (offset and strides in elements), or `_rebuild_tensor_v3(...,
dtype)` over an untyped byte storage for the dtypes without a legacy storage class.

`load(path)` unpickles data.pkl with an Unpickler that never imports or calls anything outside a
fixed list: dicts, OrderedDict, lists, tuples, sets and numbers come back as themselves; the tensor
rebuild functions and nn.Parameter's return `Tensor` objects (below) whose bytes are read from the
archive when asked for; every other global (an nn.Module class, a numpy scalar, os.system, ...)
becomes an inert `Opaque` placeholder that records its name, arguments and state and runs nothing.
So reading an untrusted file cannot execute code (unlike `torch.load(weights_only=False)`).

A pickled nn.Module comes back as an Opaque whose state holds `_parameters`, `_buffers` and
`_modules`; `module_state_dict` rebuilds its state dict from those (PyTorch's order: parameters,
persistent buffers, then submodules).

Not supported, with a `CheckpointError` that says so: the legacy (non-zip) format of PyTorch < 1.6 or
`_use_new_zipfile_serialization=False`, TorchScript archives (`torch.jit.save`), and the values of
tensors with quantized, float8, complex32 or bit-packed dtypes (such tensors load; reading their
values raises).
"""
import collections
import io
import pickle
import zipfile

import numpy as np

# Legacy storage class name -> (torch dtype name, numpy dtype of the stored bytes or None).
# bfloat16 is stored as its raw uint16 bit patterns (numpy has no bfloat16).
STORAGE_TYPES = {
    "FloatStorage": ("float32", "f4"),
    "DoubleStorage": ("float64", "f8"),
    "HalfStorage": ("float16", "f2"),
    "BFloat16Storage": ("bfloat16", "u2"),
    "LongStorage": ("int64", "i8"),
    "IntStorage": ("int32", "i4"),
    "ShortStorage": ("int16", "i2"),
    "CharStorage": ("int8", "i1"),
    "ByteStorage": ("uint8", "u1"),
    "BoolStorage": ("bool", "?"),
    "ComplexFloatStorage": ("complex64", "c8"),
    "ComplexDoubleStorage": ("complex128", "c16"),
    "QInt8Storage": ("qint8", None),
    "QUInt8Storage": ("quint8", None),
    "QInt32Storage": ("qint32", None),
    "QUInt4x2Storage": ("quint4x2", None),
    "QUInt2x4Storage": ("quint2x4", None),
    "UntypedStorage": ("uint8", "u1"),   # raw bytes; the tensor's dtype comes from _rebuild_tensor_v3
}

# torch dtype name -> numpy dtype of the stored bytes (None: values not readable here).
DTYPES = {torch_name: np_code for torch_name, np_code in STORAGE_TYPES.values()}
DTYPES.update({"uint16": "u2", "uint32": "u4", "uint64": "u8"})
FLOATING = {"float32", "float64", "float16", "bfloat16"}
UNREADABLE_FLOATING = {"float8_e5m2", "float8_e4m3fn", "float8_e5m2fnuz", "float8_e4m3fnuz", "float8_e8m0fnu",
                       "float4_e2m1fn_x2"}
# Aliases under which a pickle may name a dtype (GLOBAL torch <name>).
DTYPE_ALIASES = {"float": "float32", "double": "float64", "half": "float16", "long": "int64", "int": "int32",
                 "short": "int16", "cfloat": "complex64", "cdouble": "complex128"}

LEGACY_MAGIC = bytes.fromhex("80028a0a6cfc9c46f9206aa85019")  # pickle of torch's legacy MAGIC_NUMBER


class CheckpointError(Exception):
    """A file this reader cannot use; the message names the file, what was expected, and a hint."""


class Storage:
    """One `data/KEY` record of the archive, read on first use."""

    def __init__(self, archive, key, storage_type, numel):
        self.archive, self.key, self.storage_type, self.numel = archive, key, storage_type, numel
        self._bytes = None

    @property
    def dtype(self):
        return STORAGE_TYPES[self.storage_type][0]

    def data(self):
        if self._bytes is None:
            self._bytes = self.archive.record(f"data/{self.key}")
        return self._bytes


class Tensor:
    """A tensor of the checkpoint: dtype (torch's name, e.g. 'float32', 'bfloat16'), shape, and its
    values on demand (`numpy()`, `to_float32()`)."""

    def __init__(self, storage, offset, shape, stride, dtype, requires_grad=False):
        self.storage, self.offset = storage, int(offset)
        self.shape, self.stride = tuple(int(s) for s in shape), tuple(int(s) for s in stride)
        self.dtype, self.requires_grad = dtype, bool(requires_grad)

    def __repr__(self):
        return f"Tensor(dtype={self.dtype}, shape={list(self.shape)})"

    @property
    def is_floating_point(self):
        return self.dtype in FLOATING or self.dtype in UNREADABLE_FLOATING

    @property
    def numel(self):
        n = 1
        for s in self.shape:
            n *= s
        return n

    def numpy(self):
        """The values as a new C-contiguous numpy array. bfloat16 comes back as its uint16 bit
        patterns (see `to_float32`)."""
        code = DTYPES.get(self.dtype)
        where = f"{self.storage.archive.path}: tensor of storage data/{self.storage.key}"
        if code is None:
            raise CheckpointError(
                f"{where}: dtype {self.dtype} is not supported by the torch-free reader (expected one of "
                f"{', '.join(sorted(k for k, v in DTYPES.items() if v))}).\n"
                f"hint: convert with PyTorch installed (--reader torch), or re-save the tensor as float32.")
        dt = np.dtype(code).newbyteorder(">" if self.storage.archive.big_endian else "<")
        raw = self.storage.data()
        if len(raw) % dt.itemsize:
            raise CheckpointError(f"{where}: {len(raw)} bytes is not a whole number of {self.dtype} values.\n"
                                  f"hint: the file is damaged or truncated.")
        count = len(raw) // dt.itemsize
        if self.storage.numel is not None and self.storage.storage_type != "UntypedStorage" \
                and count != self.storage.numel:
            raise CheckpointError(f"{where}: the pickle says {self.storage.numel} values, the record holds {count}.\n"
                                  f"hint: the file is damaged or truncated.")
        if self.numel == 0:
            return np.zeros(self.shape, dtype=dt.newbyteorder("="))
        if self.offset < 0 or any(s < 0 for s in self.stride) or len(self.stride) != len(self.shape):
            raise CheckpointError(f"{where}: invalid view (offset {self.offset}, shape {list(self.shape)}, "
                                  f"stride {list(self.stride)}).\nhint: the file is damaged.")
        last = self.offset + sum((n - 1) * s for n, s in zip(self.shape, self.stride))
        if last >= count:
            raise CheckpointError(f"{where}: view (offset {self.offset}, shape {list(self.shape)}, stride "
                                  f"{list(self.stride)}) reaches value {last}, the storage holds {count}.\n"
                                  f"hint: the file is damaged or truncated.")
        base = np.frombuffer(raw, dtype=dt, count=count)
        view = np.lib.stride_tricks.as_strided(base[self.offset:], shape=self.shape,
                                               strides=[s * dt.itemsize for s in self.stride], writeable=False)
        return np.array(view, dtype=dt.newbyteorder("="), order="C")  # keeps shape [] (ascontiguousarray would not)

    def to_float32(self):
        """Floating values as float32: float64 and float16 rounded as numpy's astype (round to
        nearest even, the same as torch's .float()), bfloat16 widened exactly."""
        if not self.is_floating_point:
            raise CheckpointError(f"{self.storage.archive.path}: tensor of dtype {self.dtype} is not floating point")
        a = self.numpy()
        if self.dtype == "bfloat16":
            return (a.astype(np.uint32) << 16).view(np.float32)
        return np.array(a, dtype=np.float32, order="C")


class Opaque:
    """A pickled object of a class this reader does not know. Holds the global's name, the
    arguments it was called with, its pickled state and any items appended to it; runs no code."""

    global_name = "?"

    def __new__(cls, *args, **kwargs):
        obj = object.__new__(cls)
        obj.args, obj.kwargs, obj.state, obj.items, obj.list = args, kwargs, None, {}, []
        return obj

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        self.state = state

    def __setitem__(self, key, value):
        self.items[key] = value

    def append(self, value):
        self.list.append(value)

    def extend(self, values):
        self.list.extend(values)

    def __repr__(self):
        return f"<opaque {self.global_name}>"


def opaque_class(module, name):
    return type(name, (Opaque,), {"global_name": f"{module}.{name}", "__module__": "torchzip.opaque"})


class StorageType:
    def __init__(self, name):
        self.name = name


class DType:
    def __init__(self, name):
        self.name = DTYPE_ALIASES.get(name, name)


def _rebuild_tensor(storage, offset, size, stride, *_):
    if not isinstance(storage, Storage):
        return opaque_class("torch._utils", "_rebuild_tensor")(storage, offset, size, stride)
    return Tensor(storage, offset, size, stride, storage.dtype)


def _rebuild_tensor_v2(storage, offset, size, stride, requires_grad=False, backward_hooks=None, metadata=None):
    t = _rebuild_tensor(storage, offset, size, stride)
    if isinstance(t, Tensor):
        t.requires_grad = bool(requires_grad)
    return t


def _rebuild_tensor_v3(storage, offset, size, stride, requires_grad, backward_hooks, dtype, metadata=None):
    if not isinstance(storage, Storage) or not isinstance(dtype, DType):
        return opaque_class("torch._utils", "_rebuild_tensor_v3")(storage, offset, size, stride, dtype)
    return Tensor(storage, offset, size, stride, dtype.name, requires_grad)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, state=None):
    if isinstance(data, Tensor):
        data.requires_grad = bool(requires_grad)
    return data


def _rebuild_from_type_v2(func, new_type, args, state):
    # A tensor subclass: rebuild the plain tensor with `func` (itself from this allow-list or an
    # Opaque class), ignore the subclass.
    return func(*args)


def _rebuild_from_type(func, new_type, args, state):
    return func(*args)


ALLOWED = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_tensor_v3"): _rebuild_tensor_v3,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type_v2,
    ("torch._tensor", "_rebuild_from_type"): _rebuild_from_type,
    ("torch", "Size"): tuple,
}
for _builtins in ("builtins", "__builtin__"):
    for _t in (set, frozenset, list, dict, tuple, int, float, bool, str, bytes, bytearray, complex, slice, range):
        ALLOWED[(_builtins, _t.__name__)] = _t


class Archive:
    """The records of one torch.save zip archive (all under one top-level folder)."""

    def __init__(self, path):
        self.path = path
        try:
            self.zip = zipfile.ZipFile(path)
        except FileNotFoundError:
            raise CheckpointError(f"{path}: no such file.\nhint: check the path.") from None
        except (zipfile.BadZipFile, OSError) as e:
            raise CheckpointError(f"{path}: not a readable zip archive ({e}).") from None
        names = self.zip.namelist()
        pickles = [n for n in names if n.endswith("/data.pkl") and n.count("/") == 1] or \
                  [n for n in names if n == "data.pkl"]
        scripted = any(n.endswith("/constants.pkl") or "/code/" in n for n in names)
        if len(pickles) != 1 or scripted:
            what = ("a TorchScript archive (torch.jit.save), not a checkpoint of tensors" if scripted else
                    f"a zip archive with {len(pickles)} data.pkl records at the top level (first entries: "
                    f"{', '.join(names[:5])})")
            hint = ("hint: in Python with torch, save torch.jit.load(FILE).state_dict() with torch.save."
                    if scripted else "hint: is this a PyTorch checkpoint written by torch.save?")
            raise CheckpointError(f"{path}: expected a torch.save zip archive with one PREFIX/data.pkl; found {what}.\n"
                                  f"{hint}")
        self.prefix = pickles[0][: -len("data.pkl")]
        order = self._optional("byteorder")
        if order not in (None, b"little", b"big"):
            raise CheckpointError(f"{path}: unknown byteorder record {order!r}; expected 'little' or 'big'.")
        self.big_endian = order == b"big"
        self.storages = {}

    def _optional(self, name):
        try:
            return self.zip.read(self.prefix + name).strip()
        except KeyError:
            return None

    def record(self, name):
        try:
            return self.zip.read(self.prefix + name)
        except KeyError:
            raise CheckpointError(f"{self.path}: the pickle refers to {self.prefix}{name}, which is not in the "
                                  f"archive.\nhint: the file is damaged or truncated.") from None

    def storage(self, storage_type, key, numel):
        s = self.storages.get(key)
        if s is None:
            s = self.storages[key] = Storage(self, key, storage_type, numel)
        elif s.storage_type != storage_type:
            raise CheckpointError(f"{self.path}: storage {key} is used both as {s.storage_type} and as "
                                  f"{storage_type}.\nhint: the file is damaged.")
        return s


class _Unpickler(pickle.Unpickler):
    def __init__(self, data, archive):
        super().__init__(io.BytesIO(data))
        self.archive = archive

    def find_class(self, module, name):
        hit = ALLOWED.get((module, name))
        if hit is not None:
            return hit
        if module == "torch" and name.endswith("Storage"):
            if name not in STORAGE_TYPES:
                raise CheckpointError(f"{self.archive.path}: unknown storage type torch.{name}; expected one of "
                                      f"{', '.join(f'torch.{k}' for k in STORAGE_TYPES)}.\n"
                                      f"hint: convert with PyTorch installed (--reader torch).")
            return StorageType(name)
        if module == "torch.storage" and name == "UntypedStorage":
            return StorageType(name)
        if module == "torch" and (name in DTYPES or name in DTYPE_ALIASES or name in UNREADABLE_FLOATING
                                  or name.startswith(("float", "int", "uint", "complex", "bits", "qint", "quint"))):
            return DType(name)
        return opaque_class(module, name)

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage" and isinstance(pid[1], StorageType)):
            raise CheckpointError(f"{self.archive.path}: unexpected persistent id {pid!r} in data.pkl; expected "
                                  f"('storage', torch.<Type>Storage, key, location, numel).\n"
                                  f"hint: is this a checkpoint written by torch.save?")
        _, storage_type, key, _location, numel = pid[:5]
        return self.archive.storage(storage_type.name, str(key), int(numel))


def load(path):
    """Unpickle the checkpoint at `path` (see the module doc). Raises CheckpointError."""
    try:
        with open(path, "rb") as f:
            head = f.read(64)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such file.\nhint: check the path.") from None
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read ({e.strerror}).") from None
    if not zipfile.is_zipfile(path):
        raise CheckpointError(f"{path}: expected a PyTorch zip checkpoint (torch.save, PyTorch >= 1.6); "
                              f"found {describe_non_zip(path, head)}.\n"
                              "hint: with PyTorch installed, convert with --reader torch, or re-save it once as "
                              "a zip checkpoint: torch.save(torch.load(OLD, map_location='cpu'), NEW).")
    archive = Archive(path)
    try:
        return _Unpickler(archive.record("data.pkl"), archive).load()
    except CheckpointError:
        raise
    except Exception as e:  # noqa: BLE001 - a malformed pickle: report where
        raise CheckpointError(f"{path}: cannot unpickle {archive.prefix}data.pkl: {type(e).__name__}: {e}.\n"
                              f"hint: the file is damaged, or not written by torch.save.") from None


def describe_non_zip(path, head):
    if head.startswith(LEGACY_MAGIC):
        return ("the legacy non-zip format (PyTorch < 1.6, or torch.save(..., "
                "_use_new_zipfile_serialization=False)), which this torch-free reader does not read")
    if head[:1] == b"\x80":
        return "a plain pickle that is not a torch.save zip archive"
    import tarfile
    if tarfile.is_tarfile(path):
        return "a tar archive (the format of PyTorch < 0.4), which this torch-free reader does not read"
    if len(head) >= 9 and head[8:9] == b"{":
        return "what looks like a safetensors file (umtrain reads those directly; no conversion needed)"
    return f"a file starting with {head[:8]!r}"


def is_module(obj):
    return isinstance(obj, Opaque) and isinstance(obj.state, dict) and \
        "_parameters" in obj.state and "_modules" in obj.state


def module_state_dict(module, prefix=""):
    """The state dict of a pickled nn.Module (an Opaque): parameters, persistent buffers, then
    submodules, recursively, with dotted names as `nn.Module.state_dict()` gives them."""
    out = collections.OrderedDict()
    state = module.state
    for name, p in (state.get("_parameters") or {}).items():
        if p is not None:
            out[prefix + name] = p
    skip = state.get("_non_persistent_buffers_set") or set()
    for name, b in (state.get("_buffers") or {}).items():
        if b is not None and name not in skip:
            out[prefix + name] = b
    for name, m in (state.get("_modules") or {}).items():
        if is_module(m):
            out.update(module_state_dict(m, f"{prefix}{name}."))
    return out


# ---------------------------------------------------------------- safetensors
# Dtype codes and the order safetensors (the reference Rust writer) sorts tensors by: larger
# dtype rank first, then name.
ST_DTYPES = [("BOOL", "?"), ("U8", "u1"), ("I8", "i1"), ("I16", "i2"), ("U16", "u2"), ("F16", "f2"),
             ("BF16", None), ("I32", "i4"), ("U32", "u4"), ("F32", "f4"), ("F64", "f8"), ("I64", "i8"), ("U64", "u8")]
_ST_CODE = {np.dtype(code).newbyteorder("<").str: (rank, name) for rank, (name, code) in enumerate(ST_DTYPES) if code}


def write_safetensors(path, tensors, metadata=None):
    """Write numpy arrays as a safetensors file, laid out as the `safetensors` package's
    save_file lays it out (same header JSON, tensor order, padding and data), with the metadata
    keys in sorted order (the package's order of them varies from run to run)."""
    import json
    entries = []
    for name, a in tensors.items():
        a = np.asarray(a)
        key = a.dtype.newbyteorder("<").str if a.dtype.byteorder != "|" else a.dtype.str
        if key not in _ST_CODE:
            raise ValueError(f"{name}: dtype {a.dtype} has no safetensors code")
        rank, code = _ST_CODE[key]
        entries.append((-rank, name, code, np.array(a, dtype=a.dtype.newbyteorder("<"), order="C")))
    entries.sort(key=lambda e: (e[0], e[1].encode("utf-8")))
    header = {}
    if metadata:
        header["__metadata__"] = {k: metadata[k] for k in sorted(metadata)}
    offset = 0
    for _, name, code, a in entries:
        header[name] = {"dtype": code, "shape": list(a.shape), "data_offsets": [offset, offset + a.nbytes]}
        offset += a.nbytes
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(len(text).to_bytes(8, "little"))
        f.write(text)
        for *_, a in entries:
            f.write(a.tobytes())
