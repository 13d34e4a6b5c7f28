"""ONNX import and export: the public entry points of streamlstm.converters.onnx.

``import_onnx`` reads a model (path, bytes or ModelProto) into a Network; ``export_onnx`` writes
a Network as an ONNX model that runs one frame (or a whole sequence) per call with explicit
state inputs and outputs. The work is done in onnx_load (safe reading), onnx_fold (flattening and
constant folding), onnx_import with onnx_walk/onnx_plumbing/onnx_heads/onnx_stream (the
data-path walk) and onnx_export.
"""

from __future__ import annotations

import dataclasses

from streamlstm.network import Network

from .onnx_export import export_onnx, state_names
from .onnx_fold import build_graph
from .onnx_import import import_graph
from .onnx_load import OnnxSource, load_model

__all__ = ["import_onnx", "export_onnx", "state_names", "tensor_names"]


def import_onnx(source: OnnxSource, *, inputs: list[str] | None = None,
                outputs: list[str] | None = None) -> Network:
    """Import an ONNX model; ``inputs``/``outputs`` name tensors to import only the part between them."""
    if isinstance(inputs, str):
        inputs = [inputs]
    if isinstance(outputs, str):
        outputs = [outputs]
    model = load_model(source)
    net = import_graph(build_graph(model), inputs, outputs)
    if not net.name and model.graph.name:
        net = dataclasses.replace(net, name=model.graph.name)
    return net


def tensor_names(source: OnnxSource) -> list[tuple[str, str, str]]:
    """(tensor name, producing op, shape) of every node output, to pick ``inputs``/``outputs`` from."""
    g = build_graph(load_model(source))
    rows = [(n, "graph input", str(g.shape(n))) for n in g.input_names if n not in g.initializers]
    for node in g.nodes:
        for o in node.output:
            if o:
                rows.append((o, node.op_type, str(g.shape(o))))
    return rows
