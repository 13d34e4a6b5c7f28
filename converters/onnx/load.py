"""Read an ONNX model safely: path, bytes or ModelProto in, a self-contained ModelProto out.

External-data tensors are resolved here rather than by ``onnx.load``: a file is read only if it
lies inside the model's own folder (no absolute paths, no ``..``, no symlink leaving the folder),
and every tensor's byte count is checked against its declared shape and the file's size before
anything is allocated; the bytes read from external files count as stored bytes of the model in
the load budget (``streamlstm.budget``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator, Union

import numpy as np
import onnx
from onnx import TensorProto

from streamlstm.budget import active as active_budget
from streamlstm.errors import ConversionError

OnnxSource = Union[str, os.PathLike, bytes, bytearray, memoryview, onnx.ModelProto]


def load_model(source: OnnxSource) -> onnx.ModelProto:
    """Return a ModelProto whose tensors all hold their data inline (external data resolved)."""
    base_dir: Path | None = None
    if isinstance(source, onnx.ModelProto):
        model = source
        if any(_is_external(t) for t in iter_tensors(model)):
            model = onnx.ModelProto()
            model.CopyFrom(source)
    elif isinstance(source, (bytes, bytearray, memoryview)):
        model = onnx.ModelProto()
        try:
            model.ParseFromString(bytes(source))
        except Exception as e:  # protobuf DecodeError and friends
            raise ConversionError(f"ONNX bytes: not a valid ModelProto ({e})") from None
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise ConversionError(f"{path}: no such ONNX file")
        try:
            model = onnx.load(str(path), load_external_data=False)
        except Exception as e:
            raise ConversionError(f"{path}: cannot parse ONNX model ({e})") from None
        base_dir = path.resolve().parent
    else:
        raise ConversionError(f"cannot read an ONNX model from {type(source).__name__}; "
                              "pass a path, bytes or an onnx.ModelProto")
    if not model.HasField("graph"):
        raise ConversionError("ONNX model has no graph")
    for t in iter_tensors(model):
        if _is_external(t):
            _resolve_external(t, base_dir)
    return model


def iter_tensors(model: onnx.ModelProto) -> Iterator[TensorProto]:
    """Every TensorProto of the model: initializers and tensor attributes, in all sub-graphs and functions."""
    yield from _graph_tensors(model.graph)
    for f in model.functions:
        for n in f.node:
            yield from _node_tensors(n)


def _graph_tensors(g: onnx.GraphProto) -> Iterator[TensorProto]:
    yield from g.initializer
    for st in g.sparse_initializer:
        yield st.values
        yield st.indices
    for n in g.node:
        yield from _node_tensors(n)


def _node_tensors(n: onnx.NodeProto) -> Iterator[TensorProto]:
    for a in n.attribute:
        if a.HasField("t"):
            yield a.t
        yield from a.tensors
        if a.HasField("sparse_tensor"):
            yield a.sparse_tensor.values
            yield a.sparse_tensor.indices
        if a.HasField("g"):
            yield from _graph_tensors(a.g)
        for sg in a.graphs:
            yield from _graph_tensors(sg)


def _is_external(t: TensorProto) -> bool:
    return t.HasField("data_location") and t.data_location == TensorProto.EXTERNAL


def expected_nbytes(t: TensorProto) -> int:
    """Byte size a tensor's dims and data type call for (raises ConversionError when unknown)."""
    try:
        itemsize = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(t.data_type)).itemsize
    except Exception:
        raise ConversionError(f"tensor {t.name!r}: unsupported data type {t.data_type}") from None
    if t.data_type in (TensorProto.STRING,):
        raise ConversionError(f"tensor {t.name!r}: string tensors are not supported")
    n = 1
    for d in t.dims:
        if d < 0:
            raise ConversionError(f"tensor {t.name!r}: negative dimension {d}")
        n *= int(d)
    return n * itemsize


def _resolve_external(t: TensorProto, base_dir: Path | None) -> None:
    info = {e.key: e.value for e in t.external_data}
    where = f"tensor {t.name!r}"
    if base_dir is None:
        raise ConversionError(f"{where} keeps its data in an external file ({info.get('location')!r}); "
                              "load the model from its path so the file can be found next to it")
    loc = info.get("location", "")
    if not loc:
        raise ConversionError(f"{where}: external data without a location")
    rel = Path(loc)
    if rel.is_absolute() or loc.startswith(("/", "\\")) or (len(loc) > 1 and loc[1] == ":") \
            or ".." in Path(loc.replace("\\", "/")).parts:
        raise ConversionError(f"{where}: external data location {loc!r} is outside the model's folder "
                              "(absolute paths and '..' are refused)")
    full = (base_dir / rel)
    try:
        real = full.resolve(strict=True)
    except (OSError, RuntimeError):
        raise ConversionError(f"{where}: external data file {loc!r} not found in {base_dir}") from None
    if real != base_dir and base_dir not in real.parents:
        raise ConversionError(f"{where}: external data file {loc!r} resolves outside the model's folder "
                              "(symlink escape refused)")
    if not real.is_file():
        raise ConversionError(f"{where}: external data location {loc!r} is not a regular file")
    try:
        offset = int(info.get("offset", 0) or 0)
        length = int(info["length"]) if info.get("length") not in (None, "") else None
    except ValueError:
        raise ConversionError(f"{where}: bad external data offset/length {info}") from None
    need = expected_nbytes(t)
    if length is None:
        length = need
    if offset < 0 or length < 0:
        raise ConversionError(f"{where}: negative external data offset/length")
    if length != need:
        raise ConversionError(f"{where}: external data length {length} does not match the "
                              f"{need} bytes its shape {list(t.dims)} needs")
    size = real.stat().st_size
    if offset + length > size:
        raise ConversionError(f"{where}: external data needs bytes {offset}..{offset + length} "
                              f"but {loc!r} has only {size} bytes")
    budget = active_budget()
    if budget is not None:
        budget.add_stored(length)
    with open(real, "rb") as fh:
        fh.seek(offset)
        data = fh.read(length)
    if len(data) != length:
        raise ConversionError(f"{where}: short read from {loc!r}")
    t.raw_data = data
    del t.external_data[:]
    t.data_location = TensorProto.DEFAULT


def to_array(t: TensorProto) -> np.ndarray:
    """numpy array of an inline tensor, with its size checked before conversion."""
    if t.data_type == TensorProto.STRING:
        raise ConversionError(f"tensor {t.name!r}: string tensors are not supported")
    if t.HasField("raw_data"):
        need = expected_nbytes(t)
        if len(t.raw_data) != need:
            raise ConversionError(f"tensor {t.name!r}: {len(t.raw_data)} bytes of data for shape "
                                  f"{list(t.dims)} ({need} bytes expected)")
    try:
        return onnx.numpy_helper.to_array(t)
    except Exception as e:
        raise ConversionError(f"tensor {t.name!r}: cannot read data ({e})") from None
