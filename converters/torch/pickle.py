"""Read ``torch.save`` checkpoints without torch and without running code from the file.

Both containers torch writes are understood:

- the zip format (torch >= 1.6): ``<archive>/data.pkl`` is the pickled object, each storage is
  the raw record ``<archive>/data/<key>``, ``<archive>/byteorder`` says little or big endian;
- the legacy format (``_use_new_zipfile_serialization=False``): pickled magic number, protocol
  version and sys_info, then the pickled object, the pickled list of storage keys, and for each
  key an int64 element count followed by the raw little-endian storage bytes.

The pickles are read by a restricted unpickler: every global the pickle names goes through
``find_class``, which hands out only inert stand-ins written here (tensor and storage
rebuilders, ``OrderedDict``, ``set``, numpy scalars/arrays of plain numeric dtypes, torch
dtype/device markers). Any other global is refused with a ConversionError naming it, before
it can be called. Tensors come back as NumPy arrays with their stored dtype, shape, stride and
offset (bfloat16 is widened to float32).

The stand-ins are immutable once built: a pickle ``BUILD`` on one of them (which would set a
tensor's stride or a storage's dtype after their checks) is refused, and every value is checked
again where it is used. Every array built from the file is charged to the load budget
(``streamlstm.budget``) before it is allocated.
"""

from __future__ import annotations

import _compat_pickle
import collections
import io
import math
import os
import pickle
import pickletools
import zipfile
import zlib
from pathlib import Path
from typing import Any, BinaryIO, Callable

import numpy as np

from streamlstm.budget import active as active_budget
from streamlstm.budget import load_budget
from streamlstm.errors import ConversionError
from streamlstm.safezip import check_member

from ..safetensors import bfloat16_to_float32

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
# An expanded (stride-0 / overlapping) tensor may have more elements than its storage; beyond
# this many it is refused rather than materialized.
_MAX_EXPANDED = 1 << 20
# Zip members: data.pkl above this size is refused; a compressed member whose declared size is
# both above the floor and far above its stored size is a zip bomb and is refused before reading.
_MAX_PICKLE_BYTES = 256 << 20
_LEGACY_PROTOCOL = 1001

# torch storage classes -> numpy dtype ("bfloat16" is stored as uint16 bits, widened later).
_STORAGE_DTYPES = {
    "FloatStorage": "f4", "DoubleStorage": "f8", "HalfStorage": "f2", "BFloat16Storage": "bfloat16",
    "LongStorage": "i8", "IntStorage": "i4", "ShortStorage": "i2", "CharStorage": "i1",
    "ByteStorage": "u1", "BoolStorage": "?", "ComplexFloatStorage": "c8",
    "ComplexDoubleStorage": "c16", "UntypedStorage": "u1",
}
# Storage dtypes whose elements can be weights; complex storages are recognised only to be refused.
_REAL_STORAGE_DTYPES = frozenset({"f4", "f8", "f2", "bfloat16", "i8", "i4", "i2", "i1", "u1", "?"})
_TORCH_DTYPES = ("float32", "float", "float64", "double", "float16", "half", "bfloat16", "int64",
                 "long", "int32", "int", "int16", "short", "int8", "uint8", "bool", "complex64",
                 "complex128")
# numpy dtype strings accepted inside pickled numpy scalars and arrays (no object dtypes).
_NUMPY_DTYPES = {"b1", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "f2", "f4", "f8",
                 "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
                 "float16", "float32", "float64"}


def load_torch_file(path: str | os.PathLike) -> Any:
    """Unpickle a torch.save file safely; tensors become NumPy arrays, containers stay containers."""
    path = Path(path)
    where = str(path)
    try:
        if not path.is_file():
            raise ConversionError(f"{where}: not a regular file")
        with load_budget(where, path.stat().st_size):
            return _load_path(path, where)
    except OSError as e:
        raise ConversionError(f"{where}: cannot read: {e}") from None
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, NotImplementedError, zlib.error) as e:
        raise ConversionError(f"{where}: damaged zip archive: {type(e).__name__}: {e}") from None
    except MemoryError:
        raise ConversionError(f"{where}: out of memory while reading the checkpoint") from None


def _load_path(path: Path, where: str) -> Any:
    if zipfile.is_zipfile(path):
        return _load_zip(path, where)
    with open(path, "rb") as fh:
        head = fh.read(262)
        fh.seek(0)
        if len(head) >= 262 and head[257:262] == b"ustar":
            raise ConversionError(f"{where}: a tar-format torch checkpoint (torch < 0.4); re-save "
                                  f"it with a current torch")
        if head[:1] != b"\x80":
            raise ConversionError(f"{where}: not a torch.save checkpoint (neither a zip archive "
                                  f"nor a pickle)")
        return _load_legacy(fh, where)


def _charge(nbytes: int, what: str) -> None:
    """Reserve ``nbytes`` of the current load's budget before allocating them."""
    budget = active_budget()
    if budget is not None:
        budget.take(nbytes, what)


# ---------------------------------------------------------------- stand-ins for allowed globals
class _Frozen:
    """Base of the stand-ins: attributes are set once, in ``__init__``; a pickle cannot change them.

    ``BUILD`` calls ``__setstate__``, which refuses; assignment after construction refuses too, so
    a value checked in ``__init__`` is still the value used later.
    """

    __slots__ = ()

    def _init(self, **values) -> None:
        for k, v in values.items():
            object.__setattr__(self, k, v)

    def __setattr__(self, name, value):
        raise ConversionError(f"the pickle sets {name!r} on a {type(self).__name__.lstrip('_')}: "
                              f"pickled state on tensors and storages is refused")

    def __setstate__(self, state):
        raise ConversionError(f"the pickle applies BUILD state to a {type(self).__name__.lstrip('_')}: "
                              f"pickled state on tensors and storages is refused")

    def _get(self, name: str):
        """An attribute, or a ConversionError when the object was made without ``__init__`` (NEWOBJ)."""
        try:
            return object.__getattribute__(self, name)
        except AttributeError:
            raise ConversionError(f"a {type(self).__name__.lstrip('_')} built without its constructor "
                                  f"(missing {name!r})") from None


def _check_storage_dtype(dtype) -> str:
    if not isinstance(dtype, str) or dtype not in _REAL_STORAGE_DTYPES:
        if dtype in ("c8", "c16"):
            raise ConversionError(f"complex storage (numpy dtype {dtype}): weights must be real")
        raise ConversionError(f"storage of unsupported dtype {dtype!r}")
    return dtype


class _StorageType(_Frozen):
    """What a pickled ``torch.<X>Storage`` class reference resolves to: only its dtype."""

    __slots__ = ("name", "dtype")

    def __init__(self, name: str, dtype: str):
        self._init(name=name, dtype=dtype)

    def __repr__(self):
        return f"torch.{self._get('name')}"


class _Storage(_Frozen):
    """One serialized storage: dtype and element count now, the elements once read."""

    __slots__ = ("key", "dtype", "numel", "data")

    def __init__(self, key: str, dtype: str, numel: int):
        _check_storage_dtype(dtype)
        if not isinstance(key, str) or type(numel) is not int or numel < 0:
            raise ConversionError(f"bad storage key {key!r} / element count {numel!r}")
        self._init(key=key, dtype=dtype, numel=numel, data=None)

    @property
    def itemsize(self) -> int:
        dtype = _check_storage_dtype(self._get("dtype"))
        return 2 if dtype == "bfloat16" else np.dtype(dtype).itemsize

    def nbytes(self) -> int:
        """Bytes of the storage's elements once read (bfloat16 widened to float32)."""
        dtype = _check_storage_dtype(self._get("dtype"))
        return self._get("numel") * (4 if dtype == "bfloat16" else np.dtype(dtype).itemsize)

    def fill(self, raw: bytes | bytearray, byteorder: str, where: str) -> None:
        key, dtype, numel = self._get("key"), _check_storage_dtype(self._get("dtype")), self._get("numel")
        need = numel * self.itemsize
        if len(raw) < need:
            raise ConversionError(f"{where}: storage {key!r} is truncated ({len(raw)} bytes, "
                                  f"{need} expected)")
        _charge(self.nbytes(), f"storage {key!r}")
        raw = raw[:need] if len(raw) > need else raw
        if dtype == "bfloat16":
            data = bfloat16_to_float32(np.frombuffer(raw, dtype=np.dtype("u2").newbyteorder(byteorder)))
        else:
            dt = np.dtype(dtype)
            data = np.frombuffer(raw, dtype=dt.newbyteorder(byteorder)).astype(dt)
        data.flags.writeable = False
        object.__setattr__(self, "data", data)

    def array(self, where: str) -> np.ndarray:
        """The storage's elements, checked: read, of the declared count and a real dtype."""
        data, key = self._get("data"), self._get("key")
        if not isinstance(data, np.ndarray) or data.ndim != 1 or len(data) != self._get("numel"):
            raise ConversionError(f"{where}: storage {key!r} has no data")
        return data


class _StorageView(_Frozen):
    """A legacy-format view into another storage (offset and length in elements)."""

    __slots__ = ("base", "offset", "numel")

    def __init__(self, base: _Storage, offset: int, numel: int):
        self._init(base=base, offset=offset, numel=numel)

    def array(self, where: str) -> np.ndarray:
        base, offset, numel = self._get("base"), self._get("offset"), self._get("numel")
        if not isinstance(base, _Storage):
            raise ConversionError(f"{where}: storage view over a {type(base).__name__}")
        data = base.array(where)
        if not (type(offset) is int and type(numel) is int and 0 <= offset
                and 0 <= numel and offset + numel <= len(data)):
            raise ConversionError(f"{where}: storage view outside storage {base._get('key')!r}")
        return data[offset:offset + numel]


class _Tensor(_Frozen):
    """A tensor waiting for its storage's bytes: (storage, offset, size, stride)."""

    __slots__ = ("storage", "offset", "size", "stride")

    def __init__(self, storage, offset, size, stride):
        self._init(storage=storage, offset=offset, size=size, stride=stride)
        self._geometry("tensor")

    def _geometry(self, where: str):
        """(storage, offset, size, stride), each checked; raised ConversionErrors name ``where``."""
        storage, offset = self._get("storage"), self._get("offset")
        size, stride = self._get("size"), self._get("stride")
        if not isinstance(storage, (_Storage, _StorageView)):
            raise ConversionError(f"{where}: tensor rebuilt from a {type(storage).__name__}, not a storage")
        if not isinstance(size, tuple) or not isinstance(stride, tuple):
            raise ConversionError(f"{where}: tensor size {size!r} / stride {stride!r} are not tuples")
        for v in (offset, *size, *stride):
            if type(v) is not int or v < 0:
                raise ConversionError(f"{where}: tensor with a bad offset/size/stride: {offset!r}, "
                                      f"{size!r}, {stride!r}")
        if len(size) != len(stride):
            raise ConversionError(f"{where}: tensor size {size} and stride {stride} differ in length")
        return storage, offset, size, stride

    def key(self, where: str) -> tuple:
        """What identifies the tensor's elements: two tensors with the same key hold the same data."""
        storage, offset, size, stride = self._geometry(where)
        return id(storage), offset, size, stride

    def array(self, where: str) -> np.ndarray:
        storage, offset, size, stride = self._geometry(where)
        data = storage.array(where)
        n = math.prod(size)
        if n == 0:
            return np.zeros(size, dtype=data.dtype)
        if n > max(len(data), _MAX_EXPANDED):
            raise ConversionError(f"{where}: tensor of size {size} has more elements than its "
                                  f"storage ({len(data)}): overlapping strides are not loaded")
        last = offset + sum((k - 1) * s for k, s in zip(size, stride))
        if last >= len(data):
            raise ConversionError(f"{where}: tensor of size {size}, stride {stride}, offset "
                                  f"{offset} reaches element {last} of a storage of {len(data)}")
        _charge(n * data.itemsize, f"tensor of size {size}")
        view = np.lib.stride_tricks.as_strided(data[offset:], shape=size,
                                               strides=[s * data.itemsize for s in stride],
                                               writeable=False)
        return np.array(view)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None):
    return _Tensor(storage, storage_offset, size, stride)


def _rebuild_tensor(storage, storage_offset, size, stride):
    return _Tensor(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None):
    return data


def _rebuild_parameter_with_state(data, requires_grad=False, backward_hooks=None, state=None):
    return data


class _TypeMarker(_Frozen):
    """``torch.Tensor`` / ``torch.nn.Parameter`` as a pickle names them; never instantiated."""

    __slots__ = ("name",)

    def __init__(self, name: str):
        self._init(name=name)


def _rebuild_from_type_v2(func, new_type, args, state):
    if func not in (_rebuild_tensor_v2, _rebuild_tensor, _rebuild_parameter,
                    _rebuild_parameter_with_state) or not isinstance(new_type, _TypeMarker):
        raise ConversionError("_rebuild_from_type_v2 with something other than a tensor rebuilder")
    if not isinstance(args, tuple):
        raise ConversionError("_rebuild_from_type_v2 with arguments that are not a tuple")
    return func(*args)


class _Marker(str):
    """A torch dtype or device kept as its name, e.g. ``torch.float32`` or ``cpu``."""

    __slots__ = ()


def _torch_device(*args):
    return _Marker(":".join(str(a) for a in args))


def _codecs_encode(text, encoding="utf-8"):
    # Protocol-2 pickles store bytes as _codecs.encode(str, "latin1").
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1", "utf-8", "utf8", "ascii"):
        raise ConversionError(f"_codecs.encode with {type(text).__name__} / {encoding!r}")
    _charge(len(text) * (4 if encoding in ("utf-8", "utf8") else 1), "_codecs.encode")
    return text.encode(encoding)


def _bytearray(data=b""):
    if not isinstance(data, (bytes, bytearray)):
        raise ConversionError(f"bytearray({type(data).__name__}) is not allowed")
    _charge(len(data), "bytearray")
    return bytearray(data)


class _NumpyDType(_Frozen):
    """A pickled ``numpy.dtype`` of a plain numeric type; the byte order comes from its state."""

    __slots__ = ("spec", "order")

    def __init__(self, spec, align=False, copy=True):
        if not isinstance(spec, str) or spec not in _NUMPY_DTYPES:
            raise ConversionError(f"numpy dtype {spec!r} is not a plain real numeric type")
        self._init(spec=spec, order="=")

    def __setstate__(self, state):
        if isinstance(state, tuple) and len(state) > 1 and state[1] in ("<", ">", "|", "="):
            object.__setattr__(self, "order", state[1])

    def dtype(self) -> np.dtype:
        spec, order = self._get("spec"), self._get("order")
        if spec not in _NUMPY_DTYPES or order not in ("<", ">", "|", "="):
            raise ConversionError(f"numpy dtype {spec!r} is not a plain real numeric type")
        dt = np.dtype(spec)
        return dt.newbyteorder(order) if order in "<>" else dt


def _numpy_scalar(dtype, data=None):
    if not isinstance(dtype, _NumpyDType) or not isinstance(data, bytes):
        raise ConversionError("numpy scalar without a plain dtype and bytes")
    dt = dtype.dtype()
    if len(data) != dt.itemsize:
        raise ConversionError("numpy scalar of the wrong byte length")
    return np.frombuffer(data, dtype=dt)[0].astype(dt.newbyteorder("="))


class _NumpyArray(_Frozen):
    """A pickled ndarray (``_reconstruct`` then ``__setstate__``) of a plain numeric dtype."""

    __slots__ = ("value",)

    def __init__(self, cls=None, shape=None, typecode=None):
        if not (isinstance(cls, _TypeMarker) and cls._get("name") == "numpy.ndarray"):
            raise ConversionError("numpy _reconstruct of something other than numpy.ndarray")
        self._init(value=None)

    def __setstate__(self, state):
        if self._get("value") is not None:
            raise ConversionError("numpy array given its state twice")
        if not (isinstance(state, tuple) and len(state) == 5):
            raise ConversionError("numpy array with an unknown pickled state")
        _, shape, dtype, fortran, raw = state
        if not isinstance(dtype, _NumpyDType) or not isinstance(raw, (bytes, bytearray)):
            raise ConversionError("numpy array of an object or structured dtype")
        if not isinstance(shape, tuple) or not all(type(d) is int and d >= 0 for d in shape):
            raise ConversionError(f"numpy array with bad shape {shape!r}")
        dt = dtype.dtype()
        if len(raw) != math.prod(shape) * dt.itemsize:
            raise ConversionError("numpy array whose data does not match its shape")
        _charge(len(raw), "numpy array")
        arr = np.frombuffer(raw, dtype=dt).reshape(shape, order="F" if fortran else "C")
        object.__setattr__(self, "value", arr.astype(dt.newbyteorder("=")))

    def array(self, where: str) -> np.ndarray:
        value = self._get("value")
        if not isinstance(value, np.ndarray):
            raise ConversionError(f"{where}: numpy array without data")
        return value


class _OrderedDict(collections.OrderedDict):
    """OrderedDict whose pickled attribute state (torch's ``_metadata``) is accepted and dropped."""

    def __init__(self, items=()):
        if isinstance(items, (list, tuple, dict)):
            _charge(len(items) * _SLOT_BYTES * 4, "OrderedDict")
        super().__init__(items)

    def __setstate__(self, state):
        pass


# Bytes a container built by a pickled call spends per element (a pointer and its hash slot).
_SLOT_BYTES = 16


def _container(kind: type) -> Callable:
    """``kind`` (tuple, set, frozenset) charged to the budget per element before it is built: a
    pickle may call it many times on one memoized list, and each call makes a new copy."""
    def build(items=()):
        if not isinstance(items, (list, tuple, set, frozenset, dict, str, bytes)):
            raise ConversionError(f"{kind.__name__}() of a {type(items).__name__} is not allowed")
        _charge(len(items) * _SLOT_BYTES * (1 if kind is tuple else 4), f"{kind.__name__}()")
        return kind(items)
    build.__name__ = kind.__name__
    return build


def _allowed_globals() -> dict[tuple[str, str], Any]:
    table: dict[tuple[str, str], Any] = {
        ("collections", "OrderedDict"): _OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
        ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
        ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter_with_state,
        ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type_v2,
        ("torch", "Tensor"): _TypeMarker("torch.Tensor"),
        ("torch.nn.parameter", "Parameter"): _TypeMarker("torch.nn.Parameter"),
        ("torch", "device"): _torch_device,
        ("torch", "Size"): _container(tuple),
        ("_codecs", "encode"): _codecs_encode,
        ("numpy", "dtype"): _NumpyDType,
        ("numpy", "ndarray"): _TypeMarker("numpy.ndarray"),
    }
    for name, dt in _STORAGE_DTYPES.items():
        table[("torch", name)] = _StorageType(name, dt)
    for name in _TORCH_DTYPES:
        table[("torch", name)] = _Marker(f"torch.{name}")
    for mod in ("builtins", "__builtin__"):
        table[(mod, "set")] = _container(set)
        table[(mod, "frozenset")] = _container(frozenset)
        table[(mod, "bytearray")] = _bytearray
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        table[(mod, "scalar")] = _numpy_scalar
        table[(mod, "_reconstruct")] = _NumpyArray
    return table


_ALLOWED = _allowed_globals()


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves globals only from the allow-list; storages through ``storage_for``."""

    def __init__(self, file: BinaryIO, where: str, storage_for: Callable[[tuple], Any] | None):
        super().__init__(file, encoding="utf-8")
        self._where = where
        self._storage_for = storage_for

    def find_class(self, module: str, name: str):
        obj = _ALLOWED.get((module, name))
        if obj is None:
            module = _compat_pickle.IMPORT_MAPPING.get(module, module)  # Python 2 names, for the message
            raise ConversionError(
                f"{self._where}: refusing to unpickle the global {module}.{name}: a checkpoint may "
                f"only hold tensors, storages, OrderedDict and plain containers, and loading this "
                f"one could run code. If it is a whole pickled model (torch.save(model)), re-save "
                f"model.state_dict() or export to .safetensors")
        return obj

    def persistent_load(self, pid):
        if self._storage_for is None or not isinstance(pid, tuple) or not pid:
            raise ConversionError(f"{self._where}: unexpected persistent id in the pickle")
        kind = pid[0].decode("ascii") if isinstance(pid[0], bytes) else pid[0]
        if kind != "storage":
            raise ConversionError(f"{self._where}: unsupported persistent id {kind!r} (only storages)")
        return self._storage_for(pid[1:])


class _Bounded:
    """A binary stream that never asks for more bytes than the file has left."""

    def __init__(self, fh: BinaryIO):
        self.fh = fh
        self.size = len(fh.getbuffer()) if isinstance(fh, io.BytesIO) else os.fstat(fh.fileno()).st_size

    def read(self, n: int = -1) -> bytes:
        left = max(self.size - self.fh.tell(), 0)
        return self.fh.read(left if n is None or n < 0 else min(n, left))

    def readline(self) -> bytes:
        return self.fh.readline()


_MEMO_PUTS = frozenset({"PUT", "BINPUT", "LONG_BINPUT"})


def _check_lengths(data: BinaryIO, where: str) -> None:
    """Walk the pickle's opcodes once without building anything: each counted bytes/str/long must
    fit in the data. (The C unpickler allocates the size a BINBYTES8 & co. declare before reading
    it, so a 40-byte file could otherwise ask for 2^62 bytes.)"""
    start = data.tell()
    try:
        for count, (op, arg, _) in enumerate(pickletools.genops(_Bounded(data))):
            # The C unpickler grows its memo to the largest index a PUT names: an index far beyond
            # the opcodes read so far is a memory bomb (pickle writers number their PUTs 0, 1, 2...).
            if op.name in _MEMO_PUTS and not 0 <= int(arg) <= count:
                raise ConversionError(f"{where}: pickle memo index {arg} at opcode {count} (a memo "
                                      f"larger than the pickle is refused)")
    except ConversionError:
        raise
    except Exception as e:  # ValueError from pickletools on truncated or unknown opcodes
        raise ConversionError(f"{where}: corrupt or unsupported pickle: {type(e).__name__}: {e}") from None
    data.seek(start)


def _unpickle(data: BinaryIO, where: str, storage_for=None) -> Any:
    _check_lengths(data, where)
    try:
        return _RestrictedUnpickler(data, where, storage_for).load()
    except ConversionError as e:
        if str(e).startswith(where):
            raise
        raise ConversionError(f"{where}: {e}") from None  # raised by a stand-in, which has no path
    except Exception as e:  # malformed pickles raise anything from EOFError to TypeError
        raise ConversionError(f"{where}: corrupt or unsupported pickle: {type(e).__name__}: {e}") from None


class _StorageTable:
    """The storages a pickle refers to, keyed as torch keys them."""

    def __init__(self, where: str):
        self.where = where
        self.storages: dict[str, _Storage] = {}

    def __call__(self, args: tuple):
        if len(args) not in (4, 5):
            raise ConversionError(f"{self.where}: storage id of unexpected length {len(args) + 1}")
        stype, key, _location, numel = args[:4]
        view = args[4] if len(args) == 5 else None
        if not isinstance(stype, _StorageType):
            raise ConversionError(f"{self.where}: storage of unknown type {stype!r}")
        if not isinstance(key, str) or type(numel) is not int or numel < 0:
            raise ConversionError(f"{self.where}: bad storage id {args!r}")
        dtype = stype._get("dtype")
        st = self.storages.get(key)
        if st is None:
            st = self.storages[key] = _Storage(key, dtype, numel)
        elif st.dtype != dtype or st.numel != numel:
            raise ConversionError(f"{self.where}: storage {key!r} used with two dtypes or sizes")
        if view is None:
            return st
        if not (isinstance(view, tuple) and len(view) == 3 and all(type(v) is int for v in view[1:])):
            raise ConversionError(f"{self.where}: bad storage view {view!r}")
        return _StorageView(st, view[1], view[2])


def _finish(obj: Any, where: str) -> Any:
    """The unpickled object with every tensor and stand-in replaced by plain data."""
    try:
        return _resolve(obj, where, {})
    except ConversionError as e:
        if str(e).startswith(where):
            raise
        raise ConversionError(f"{where}: {e}") from None
    except MemoryError:
        raise ConversionError(f"{where}: out of memory while rebuilding the tensors") from None
    except Exception as e:  # absurd nesting, arrays as dict keys
        raise ConversionError(f"{where}: unsupported structure in the pickle: "
                              f"{type(e).__name__}: {e}") from None


def _resolve(obj: Any, where: str, memo: dict | None = None) -> Any:
    """Replace pending tensors and stand-ins by NumPy arrays and plain containers.

    ``memo`` maps each object (and each tensor's storage geometry) to what it became, so a
    tensor pickled once and referred to many times, or many tensors over the same elements (tied
    weights), become one array.
    """
    memo = {} if memo is None else memo
    oid = id(obj)
    if oid in memo:
        return memo[oid]
    if isinstance(obj, _Tensor):
        key = ("tensor",) + obj.key(where)
        if key not in memo:
            memo[key] = obj.array(where)
        out = memo[oid] = memo[key]
    elif isinstance(obj, (_Storage, _StorageView)):
        data = obj.array(where)
        _charge(data.nbytes, "storage")
        out = memo[oid] = np.array(data)
    elif isinstance(obj, _NumpyArray):
        out = memo[oid] = obj.array(where)
    elif isinstance(obj, _NumpyDType):
        out = memo[oid] = obj.dtype()
    elif isinstance(obj, dict):
        out = memo[oid] = collections.OrderedDict() if isinstance(obj, collections.OrderedDict) else {}
        for k, v in obj.items():
            out[_resolve(k, where, memo)] = _resolve(v, where, memo)
    elif isinstance(obj, list):
        out = memo[oid] = []
        out.extend(_resolve(v, where, memo) for v in obj)
    elif isinstance(obj, tuple):
        out = memo[oid] = tuple(_resolve(v, where, memo) for v in obj)
    elif isinstance(obj, (set, frozenset)):
        out = memo[oid] = type(obj)(_resolve(v, where, memo) for v in obj)
    elif isinstance(obj, _Frozen) or callable(obj) and not isinstance(obj, type):
        raise ConversionError(f"{where}: the pickle returns a bare global ({obj!r}), not data")
    else:
        out = obj  # str, bytes, numbers, None, numpy scalars, markers
    return out


def _load_zip(path: Path, where: str) -> Any:
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        pkls = [n for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
        if not pkls:
            if any(n.endswith("constants.pkl") for n in names):
                raise ConversionError(f"{where}: a TorchScript archive (torch.jit.save), not a "
                                      f"torch.save checkpoint; save the model's state_dict instead")
            raise ConversionError(f"{where}: zip archive without <archive>/data.pkl: not a torch checkpoint")
        if len(pkls) > 1:
            raise ConversionError(f"{where}: zip archive with several data.pkl records: {pkls}")
        root = pkls[0][: -len("data.pkl")]
        size = path.stat().st_size
        byteorder = "<"
        if root + "byteorder" in names:
            info = zf.getinfo(root + "byteorder")
            check_member(info, where, ConversionError, archive_size=size)
            with zf.open(info) as fh:
                rec = fh.read(16)
            if rec not in (b"little", b"big"):
                raise ConversionError(f"{where}: unknown byteorder record {rec[:20]!r}")
            byteorder = "<" if rec == b"little" else ">"
        table = _StorageTable(where)
        pkl_info = zf.getinfo(pkls[0])
        check_member(pkl_info, where, ConversionError, archive_size=size)
        if pkl_info.file_size > _MAX_PICKLE_BYTES:
            raise ConversionError(f"{where}: {pkls[0]!r} declares {pkl_info.file_size} bytes (limit "
                                  f"{_MAX_PICKLE_BYTES}): not a state dict pickle")
        with zf.open(pkl_info) as fh:
            obj = _unpickle(io.BytesIO(fh.read(_MAX_PICKLE_BYTES)), where, table)
        for key, st in table.storages.items():
            name = f"{root}data/{key}"
            try:
                info = zf.getinfo(name)
            except KeyError:
                raise ConversionError(f"{where}: storage record {name!r} is missing") from None
            need = st.numel * st.itemsize
            check_member(info, where, ConversionError, archive_size=size)
            if info.file_size < need:
                raise ConversionError(f"{where}: storage record {name!r} has {info.file_size} bytes, "
                                      f"{need} expected")
            with zf.open(info) as fh:
                st.fill(fh.read(need), byteorder, where)
    return _finish(obj, where)


def _load_legacy(fh: BinaryIO, where: str) -> Any:
    magic = _unpickle(fh, where)
    if magic != _LEGACY_MAGIC:
        raise ConversionError(f"{where}: a pickle, but not a torch.save checkpoint (bad magic number); "
                              f"plain pickles are not loaded")
    version = _unpickle(fh, where)
    if version != _LEGACY_PROTOCOL:
        raise ConversionError(f"{where}: unsupported legacy checkpoint protocol {version!r}")
    sys_info = _unpickle(fh, where)
    if not isinstance(sys_info, dict):
        raise ConversionError(f"{where}: bad legacy checkpoint header")
    table = _StorageTable(where)
    obj = _unpickle(fh, where, table)
    keys = _unpickle(fh, where)
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise ConversionError(f"{where}: bad storage key list")
    for key in keys:
        st = table.storages.get(key)
        if st is None:
            raise ConversionError(f"{where}: storage {key!r} listed but never referenced")
        head = fh.read(8)
        if len(head) != 8:
            raise ConversionError(f"{where}: file is truncated at storage {key!r}")
        numel = int.from_bytes(head, "little", signed=True)
        if numel != st.numel:
            raise ConversionError(f"{where}: storage {key!r} holds {numel} elements, {st.numel} expected")
        need, left = numel * st.itemsize, os.fstat(fh.fileno()).st_size - fh.tell()
        if need > left:
            raise ConversionError(f"{where}: storage {key!r} needs {need} bytes, the file has {left} left")
        st.fill(fh.read(need), "<", where)
    missing = [k for k, s in table.storages.items() if s.data is None]
    if missing:
        raise ConversionError(f"{where}: storages {missing[:5]} have no data")
    return _finish(obj, where)
