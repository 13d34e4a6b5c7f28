"""Versioned, fingerprinted stream state: the bytes behind ``save_state`` / ``load_state``.

A record is ``MAGIC | version | fingerprint | dtype | count | size | states | crc32``, all
little-endian. The fingerprint hashes the network (every layer's kind, settings and weights)
together with the numerics chosen at load (dtype, weight format, activation variant), so a state
is accepted only by a model that computes the same function with the same state layout. Any
mismatch or damage raises ``ValueError`` before anything is written.

The raw arrays of ``get_state`` / ``set_state`` stay as they were: unchecked, for callers that
manage the layout themselves.
"""

from __future__ import annotations

import dataclasses
import hashlib
import struct
import zlib

import numpy as np

MAGIC = b"SLSTATE\x00"
# Bumped whenever the order or meaning of the values in a stream's state vector changes.
LAYOUT_VERSION = 1
_DTYPES = {np.dtype(np.float32): 1, np.dtype(np.float64): 2}
_DTYPE_OF_CODE = {v: k for k, v in _DTYPES.items()}
_HEAD = struct.Struct("<8sI32sBQQ")  # magic, version, fingerprint, dtype, count, state size
_CRC = struct.Struct("<I")


def _feed(h, value) -> None:
    """Hash ``value`` unambiguously: every item is tagged with its type and length."""
    if isinstance(value, np.ndarray):
        a = np.ascontiguousarray(value, dtype=np.float64)
        h.update(b"A" + struct.pack("<Q", a.ndim) + struct.pack(f"<{a.ndim}Q", *a.shape))
        h.update(a.astype("<f8").tobytes())
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        h.update(b"D" + type(value).__name__.encode() + b"\x00")
        for f in dataclasses.fields(value):
            h.update(f.name.encode() + b"=")
            _feed(h, getattr(value, f.name))
    elif isinstance(value, (list, tuple)):
        h.update(b"L" + struct.pack("<Q", len(value)))
        for v in value:
            _feed(h, v)
    else:
        r = repr(value).encode()
        h.update(b"S" + struct.pack("<Q", len(r)) + r)


def fingerprint(network, dtype: np.dtype, weight_format: str, fast_activations: bool) -> bytes:
    """32 bytes naming a model: its layers (settings and weights) and the numerics chosen at load."""
    h = hashlib.sha256(b"streamlstm-model\x00")
    _feed(h, [str(np.dtype(dtype)), str(weight_format), bool(fast_activations), LAYOUT_VERSION])
    for layer in network.layers:
        _feed(h, layer)
    if network.sources is not None:  # a chain hashes as it did before graphs existed
        _feed(h, ["sources", list(network.sources)])
    if network.outputs is not None:
        _feed(h, ["outputs", list(network.outputs)])
    return h.digest()


def encode(fp: bytes, states: np.ndarray) -> bytes:
    """The record of ``states`` (count, size) for the model with fingerprint ``fp``."""
    states = np.ascontiguousarray(states)
    count, size = states.shape
    body = _HEAD.pack(MAGIC, LAYOUT_VERSION, fp, _DTYPES[states.dtype], count, size)
    body += states.astype(states.dtype.newbyteorder("<"), copy=False).tobytes()
    return body + _CRC.pack(zlib.crc32(body))


def decode(data, fp: bytes, dtype: np.dtype, size: int, count: int | None = None) -> np.ndarray:
    """The (count, size) states of a record made by ``encode`` for this model, or ValueError.

    ``count`` None accepts any count; every check runs before the caller changes anything."""
    try:
        data = bytes(memoryview(data))
    except TypeError:
        raise TypeError(f"state: expected bytes from save_state, got {type(data).__name__}") from None
    if len(data) < _HEAD.size + _CRC.size or not data.startswith(MAGIC):
        raise ValueError("state: not a streamlstm state record (made by save_state)")
    magic, version, got_fp, code, n, got_size = _HEAD.unpack_from(data)
    if version != LAYOUT_VERSION:
        raise ValueError(f"state: layout version {version}; this streamlstm reads version {LAYOUT_VERSION}")
    (crc,) = _CRC.unpack_from(data, len(data) - _CRC.size)
    if zlib.crc32(data[:-_CRC.size]) != crc:
        raise ValueError("state: the record is damaged (checksum mismatch)")
    got_dtype = _DTYPE_OF_CODE.get(code)
    if got_dtype != np.dtype(dtype):
        raise ValueError(f"state: saved from a {getattr(got_dtype, 'name', '?')} model; this model "
                         f"is {np.dtype(dtype).name}")
    if got_fp != fp:
        raise ValueError("state: saved from a different model (fingerprint mismatch: other "
                         "layers, weights or numerics)")
    if got_size != size:
        raise ValueError(f"state: {got_size} values per stream; this model has {size}")
    if count is not None and n != count:
        raise ValueError(f"state: the record holds {n} streams, expected {count}")
    nbytes = n * size * got_dtype.itemsize
    if len(data) != _HEAD.size + nbytes + _CRC.size:
        raise ValueError("state: the record's length does not match its header")
    states = np.frombuffer(data, dtype=got_dtype.newbyteorder("<"), count=n * size, offset=_HEAD.size)
    states = states.astype(got_dtype).reshape(n, size)
    if not np.all(np.isfinite(states)):
        raise ValueError("state: contains NaN or Inf")
    return states
