"""Checks of what callers hand to a Session or a SessionPool: frames, sequences, ``out`` arrays.

Each returns an array the kernels can take as it is, or raises a clear error naming the
argument; nothing is changed before the checks pass.
"""

from __future__ import annotations

import numpy as np

NEEDS_FUTURE = ("a layer that needs the future frames of the sequence (a reverse or bidirectional "
                "recurrent layer, a non-causal convolution over time, or a backward direction's final state)")


def cast_array(a, name: str, dtype: np.dtype) -> np.ndarray:
    """``a`` as a C-contiguous array of ``dtype`` (a same-kind cast), or a clear TypeError."""
    try:
        arr = np.asarray(a)
    except Exception as e:
        raise TypeError(f"{name}: cannot convert {type(a).__name__} to an array ({e})") from None
    if arr.dtype != dtype:
        if arr.dtype.kind not in "biuf" or not np.can_cast(arr.dtype, dtype, "same_kind"):
            raise TypeError(f"{name}: cannot cast dtype {arr.dtype} to {dtype.name}")
        with np.errstate(over="ignore"):  # an overflow becomes Inf, which the kernel refuses
            arr = arr.astype(dtype)
    if not arr.flags.c_contiguous:
        arr = arr.copy(order="C")
    return arr


def check_frame(x, name: str, size: int, dtype: np.dtype) -> np.ndarray:
    """A C-contiguous 1-D array of ``size`` values of ``dtype``, or a clear error."""
    arr = cast_array(x, name, dtype)
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D frame of {size} values, got an array of shape {arr.shape}")
    if arr.shape[0] != size:
        raise ValueError(f"{name}: expected {size} values, got {arr.shape[0]}")
    return arr


def check_sequence(X, name: str, size: int, dtype: np.dtype) -> np.ndarray:
    """A C-contiguous (T, size) array of ``dtype``, or a clear error."""
    arr = cast_array(X, name, dtype)
    if arr.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D sequence of shape (T, {size}), got shape {arr.shape}")
    if arr.shape[1] != size:
        raise ValueError(f"{name}: expected {size} values per frame, got shape {arr.shape}")
    return arr


def check_out(out, dtype: np.dtype, size: int) -> np.ndarray:
    """``out`` if it is a writeable (size,) array of ``dtype`` (any strides), else a clear error."""
    if (isinstance(out, np.ndarray) and out.dtype == dtype and out.shape == (size,)
            and out.flags.writeable):
        return out
    raise ValueError(f"out: expected a writeable {dtype.name} array of shape ({size},), got "
                     f"{getattr(out, 'dtype', type(out).__name__)} {getattr(out, 'shape', '')}"
                     f"{'' if getattr(out, 'flags', None) is None or out.flags.writeable else ' read-only'}")


def check_sequence_out(out, T: int, size: int, dtype: np.dtype) -> np.ndarray:
    """``out`` if it is a writeable C-contiguous (T, size) array of ``dtype``, else a clear error."""
    if (isinstance(out, np.ndarray) and out.dtype == dtype and out.shape == (T, size)
            and out.flags.c_contiguous and out.flags.writeable):
        return out
    raise ValueError(f"out: expected a writeable C-contiguous {dtype.name} array of shape ({T}, {size}), "
                     f"got {getattr(out, 'dtype', type(out).__name__)} {getattr(out, 'shape', '')}")


def check_state(state, size: int, dtype: np.dtype) -> np.ndarray:
    """A finite (size,) state of ``dtype`` (from ``get_state``), or a clear error."""
    st = cast_array(state, "state", dtype)
    if st.shape != (size,):
        raise ValueError(f"state: expected shape ({size},) (state of this model), got {st.shape}")
    if not np.all(np.isfinite(st)):
        raise ValueError("state: contains NaN or Inf")
    return st


def bad_frame(x: np.ndarray, vocab: int) -> str:
    """What is wrong with a frame the kernel refused (NaN/Inf, or not a token id)."""
    if vocab <= 0 or not np.all(np.isfinite(x)):
        return "contains NaN or Inf"
    return f"is not a token id: expected an integer in [0, {vocab}), got {x[0]:g}"


def token_frame(x, vocab: int, dtype: np.dtype) -> np.ndarray:
    """A token id (a Python or NumPy integer, or a one-element integer array) as the (1,)
    frame of a model whose input is token ids, or a clear error."""
    arr = np.asarray(x)
    if arr.dtype == bool or arr.dtype.kind not in "iu" or arr.size != 1 or arr.ndim > 1:
        raise TypeError(f"x: expected a token id (an integer, or a one-element integer array), got "
                        f"{type(x).__name__}{'' if arr.ndim == 0 else f' of shape {arr.shape}'}"
                        f"{'' if arr.dtype.kind in 'iu' else f' dtype {arr.dtype}'}")
    v = int(arr.reshape(-1)[0])
    if not 0 <= v < vocab:
        raise ValueError(f"x: token id {v} is out of range: the vocabulary has {vocab} ids [0, {vocab})")
    return np.array([v], dtype=dtype)
