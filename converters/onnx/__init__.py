"""ONNX import and export: the public entry points of streamlstm.converters.onnx.

``import_onnx`` reads a model (path, bytes or ModelProto) into a Network; ``export_onnx`` writes
a Network as an ONNX model that runs one frame (or a whole sequence) per call with explicit
state inputs and outputs. The work is done in ``load`` (safe reading), ``fold`` (flattening and
constant folding), ``importer`` with ``walk``/``plumbing``/``heads``/``stream`` (the data-path
walk) and ``export``.
"""

from __future__ import annotations

import dataclasses

from streamlstm.network import Network

from . import heads, plumbing  # noqa: F401  (importing them fills the op tables in ops)
from .export import export_onnx, state_names
from streamlstm.errors import ConversionError

from .fold import build_graph
from .frame import import_frame_graph
from .importer import import_graph
from .load import OnnxSource, load_model

__all__ = ["import_onnx", "export_onnx", "state_names", "tensor_names"]


def import_onnx(source: OnnxSource, *, inputs: list[str] | None = None,
                outputs: list[str] | None = None, constants: dict | None = None,
                dims: dict | None = None) -> Network:
    """Import an ONNX model; ``inputs``/``outputs`` name tensors to import only the part between them.
    Several ``outputs`` give a model that returns a tuple (one array per output).

    ``constants`` fixes graph inputs to values (``{"sr": 16000}``): ``If`` nodes whose condition
    then folds keep only the branch taken. ``dims`` sizes the free dimensions of the inputs
    (``{"sequence": 576}``, or an input's whole shape: ``{"input": (1, 576)}``) of a graph whose one call is one frame (an audio chunk through a
    front end and one recurrent step, state fed back through inputs and outputs): such a graph
    imports whole, front end included (``frame.py``).
    """
    if isinstance(inputs, str):
        inputs = [inputs]
    if isinstance(outputs, str):
        outputs = [outputs]
    model = load_model(source)
    if constants:
        model = pin_constants(model, constants)
    graph = build_graph(model)
    if dims is not None:
        if not isinstance(dims, dict):
            raise ConversionError(f"dims: expected a dict of dimension name -> size, got {type(dims).__name__}")
        if inputs is not None and len(inputs) != 1:
            raise ConversionError("inputs: a graph of one frame per call takes one data input")
        return import_frame_graph(graph, model, inputs[0] if inputs else None, outputs, dims,
                                  model.graph.name or "")
    try:
        return import_graph(graph, inputs, outputs, model.graph.name or "")
    except ConversionError as e:
        free = sorted({d.dim_param for v in model.graph.input for d in v.type.tensor_type.shape.dim
                       if d.dim_param})
        if free and any(n.op_type == "Conv" for n in graph.nodes) or any(n.op_type == "If" for n in graph.nodes):
            raise ConversionError(f"{e}\n(If one call of this graph is one frame, e.g. an audio chunk through a "
                                  f"front end and one recurrent step, load it whole with dims={{...}} sizing its "
                                  f"free dimensions {free}, and constants={{...}} for inputs such as a sample "
                                  "rate.)") from None
        raise


def pin_constants(model, constants: dict):
    """A copy of ``model`` whose graph inputs named in ``constants`` are initializers of those values."""
    import numpy as np
    from onnx import helper, numpy_helper

    m = type(model)()
    m.CopyFrom(model)
    inputs = {v.name: v for v in m.graph.input}
    inits = {t.name for t in m.graph.initializer}
    for name, value in constants.items():
        if name not in inputs or name in inits:
            raise ConversionError(f"constants: {name!r} is not a graph input; graph inputs are "
                                  f"{[v.name for v in m.graph.input if v.name not in inits]}")
        elem = inputs[name].type.tensor_type.elem_type
        try:
            arr = np.asarray(value, dtype=helper.tensor_dtype_to_np_dtype(elem))
        except (TypeError, ValueError) as e:
            raise ConversionError(f"constants: {name!r}: {e}") from None
        if arr.size > 1 << 20:
            raise ConversionError(f"constants: {name!r} has {arr.size} values; constants are small inputs")
        dims = inputs[name].type.tensor_type.shape.dim
        if len(dims) != arr.ndim and not (len(dims) == 0 and arr.size == 1):
            raise ConversionError(f"constants: {name!r} has rank {len(dims)}, got a value of shape {arr.shape}")
        m.graph.initializer.append(numpy_helper.from_array(arr.reshape([d.dim_value for d in dims]
                                                                       if dims else ()), name))
    return m


def tensor_names(source: OnnxSource) -> list[tuple[str, str, str]]:
    """(tensor name, producing op, shape) of every node output, to pick ``inputs``/``outputs`` from."""
    g = build_graph(load_model(source))
    rows = [(n, "graph input", str(g.shape(n))) for n in g.input_names if n not in g.initializers]
    for node in g.nodes:
        for o in node.output:
            if o:
                rows.append((o, node.op_type, str(g.shape(o))))
    return rows
