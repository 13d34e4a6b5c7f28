"""A native reader of ``.safetensors`` files: no safetensors package, no torch, no code execution.

Format: an 8-byte little-endian header length N, N bytes of JSON mapping each tensor name to
``{"dtype", "shape", "data_offsets": [begin, end]}`` (offsets into the byte buffer that follows
the header; an optional ``"__metadata__"`` maps str to str), then the raw little-endian buffers.
Every offset and size is checked against the file size before anything is read; entries whose
byte ranges overlap are refused (as the reference implementation does), and every array is charged
to the load budget (``streamlstm.budget``) before it is allocated.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np

from streamlstm.budget import charge_json, load_budget
from streamlstm.errors import ConversionError

_MAX_HEADER = 100 * 1024 * 1024  # the limit the reference implementation enforces
_MAX_DIM = 1 << 62               # NumPy refuses arrays whose non-zero dims span more bytes

# safetensors dtype -> numpy little-endian dtype ("BF16" is widened to float32 on read).
_DTYPES = {
    "F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<u2",
    "I64": "<i8", "I32": "<i4", "I16": "<i2", "I8": "i1",
    "U64": "<u8", "U32": "<u4", "U16": "<u2", "U8": "u1", "BOOL": "?",
}


def bfloat16_to_float32(bits: np.ndarray) -> np.ndarray:
    """Widen raw bfloat16 bit patterns (uint16) to float32 exactly."""
    return (bits.astype(np.uint32) << 16).view(np.float32)


def is_safetensors(path: str | os.PathLike) -> bool:
    """True when ``path`` is named ``.safetensors`` or starts like one (a header length below the
    file size, then a JSON object), whatever its name."""
    path = Path(path)
    if path.suffix.lower() == ".safetensors":
        return True
    try:
        with open(path, "rb") as fh:
            head = fh.read(9)
        return len(head) == 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < path.stat().st_size
    except OSError:
        return False


def read_safetensors(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read every tensor of a ``.safetensors`` file as a NumPy array (header order)."""
    path = Path(path)
    where = str(path)
    try:
        if not path.is_file():
            raise ConversionError(f"{where}: not a regular file")
        size = path.stat().st_size
        with open(path, "rb") as fh, load_budget(where, size) as budget:
            head = fh.read(8)
            if len(head) != 8:
                raise ConversionError(f"{where}: not a safetensors file (shorter than 8 bytes)")
            n = int.from_bytes(head, "little")
            if n > _MAX_HEADER or 8 + n > size:
                raise ConversionError(f"{where}: not a safetensors file (header length {n} does not "
                                      f"fit the file size {size})")
            charge_json(n, "the safetensors header")
            header = _parse_header(fh.read(n), where)
            base, buffer_len = 8 + n, size - 8 - n
            entries = [(name, *_check_entry(name, entry, buffer_len, where)) for name, entry in header.items()]
            _check_disjoint(entries, where)
            out = {}
            for name, dt, shape, (begin, end) in entries:
                budget.take((end - begin) * (3 if dt == "BF16" else 1), f"tensor {name!r}")
                fh.seek(base + begin)
                raw = bytearray(end - begin)
                if fh.readinto(raw) != len(raw):
                    raise ConversionError(f"{where}: tensor {name!r}: file is truncated")
                arr = np.frombuffer(raw, dtype=np.dtype(_DTYPES[dt])).reshape(shape)
                if dt == "BF16":
                    arr = bfloat16_to_float32(arr)
                out[name] = arr.astype(arr.dtype.newbyteorder("="), copy=False)
            return out
    except OSError as e:
        raise ConversionError(f"{where}: cannot read safetensors file: {e}") from None
    except MemoryError:
        raise ConversionError(f"{where}: out of memory while reading the tensors") from None


def _check_disjoint(entries: list, where: str) -> None:
    """Refuse entries whose byte ranges overlap: each byte of the buffer belongs to one tensor."""
    spans = sorted((begin, end, name) for name, _, _, (begin, end) in entries if end > begin)
    for (b0, e0, n0), (b1, e1, n1) in zip(spans, spans[1:]):
        if b1 < e0:
            raise ConversionError(f"{where}: tensors {n0!r} (bytes {b0}..{e0}) and {n1!r} (bytes "
                                  f"{b1}..{e1}) overlap in the data buffer")


def _parse_header(raw: bytes, where: str) -> dict:
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise ConversionError(f"{where}: not a safetensors file (header is not JSON: {e})") from None
    if not isinstance(header, dict):
        raise ConversionError(f"{where}: safetensors header is not a JSON object")
    header.pop("__metadata__", None)
    return header


def _check_entry(name: str, entry, buffer_len: int, where: str):
    label = f"{where}: tensor {name!r}"
    if not isinstance(entry, dict):
        raise ConversionError(f"{label}: header entry is not an object")
    dt, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if not isinstance(dt, str) or dt not in _DTYPES:
        raise ConversionError(f"{label}: unsupported dtype {dt!r} (supported: {', '.join(_DTYPES)})")
    if not isinstance(shape, list) or not all(type(d) is int and 0 <= d < _MAX_DIM for d in shape):
        raise ConversionError(f"{label}: bad shape {shape!r} (dimensions must be integers in 0..2^62-1)")
    if (not isinstance(offsets, list) or len(offsets) != 2
            or not all(type(o) is int for o in offsets)
            or not 0 <= offsets[0] <= offsets[1] <= buffer_len):
        raise ConversionError(f"{label}: data_offsets {offsets!r} outside the data buffer "
                              f"of {buffer_len} bytes")
    itemsize = np.dtype(_DTYPES[dt]).itemsize
    if math.prod(d for d in shape if d) * itemsize >= _MAX_DIM:
        raise ConversionError(f"{label}: shape {shape} is beyond what an array can hold")
    nbytes = math.prod(shape) * itemsize
    if offsets[1] - offsets[0] != nbytes:
        raise ConversionError(f"{label}: data_offsets span {offsets[1] - offsets[0]} bytes, "
                              f"but shape {shape} of {dt} needs {nbytes}")
    return dt, tuple(shape), offsets
