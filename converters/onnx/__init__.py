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
from .fold import build_graph
from .importer import import_graph
from .load import OnnxSource, load_model

__all__ = ["import_onnx", "export_onnx", "state_names", "tensor_names"]


def import_onnx(source: OnnxSource, *, inputs: list[str] | None = None,
                outputs: list[str] | None = None) -> Network:
    """Import an ONNX model; ``inputs``/``outputs`` name tensors to import only the part between them."""
    if isinstance(inputs, str):
        inputs = [inputs]
    if isinstance(outputs, str):
        outputs = [outputs]
    model = load_model(source)
    return import_graph(build_graph(model), inputs, outputs, model.graph.name or "")


def tensor_names(source: OnnxSource) -> list[tuple[str, str, str]]:
    """(tensor name, producing op, shape) of every node output, to pick ``inputs``/``outputs`` from."""
    g = build_graph(load_model(source))
    rows = [(n, "graph input", str(g.shape(n))) for n in g.input_names if n not in g.initializers]
    for node in g.nodes:
        for o in node.output:
            if o:
                rows.append((o, node.op_type, str(g.shape(o))))
    return rows
