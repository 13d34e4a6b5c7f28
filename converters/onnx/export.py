"""Network -> ONNX model with explicit state inputs and outputs.

Layout of the exported model (``state_names`` lists the state tensors):

- input ``x``: [T, input_size] (T is dynamic; feed [1, input_size] to advance one frame);
- for recurrent layer k: input ``h_in_k`` [D, 1, H] (LSTM also ``c_in_k``); start a stream with
  zeros, or, when the layer has a learned initial state, with that state, which the model holds
  as the input's default value (an initializer of the same name: onnxruntime lists it under
  ``get_overridable_initializers()`` and uses it when the input is not fed); outputs
  ``h_out_k`` / ``c_out_k``, the state after the last frame: feed them back as ``h_in_k`` /
  ``c_in_k`` on the next call to stream;
- output ``y``: [T, output_size].

Recurrent layers become ONNX LSTM/GRU/RNN nodes (all activations written with explicit
alpha/beta, in onnxruntime's order: only activations that take alpha/beta consume them), Dense
layers Gemm, activations their ONNX op (Affine and ScaledTanh as Mul/Add/Tanh). import_onnx reads
the result back into an equivalent Network, state ports included. ``EXPORTERS`` maps each layer
kind to its exporter and ``STATES`` to the state tensors it carries: a new kind is an entry in each.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from streamlstm.errors import ConversionError
from streamlstm.network import GRU, LSTM, Activation, Dense, Network

OPSET = 17
_NEEDS_ALPHA = {"LeakyRelu", "ThresholdedRelu", "Elu", "Affine", "ScaledTanh", "HardSigmoid"}
_NEEDS_BETA = {"Affine", "ScaledTanh", "HardSigmoid"}
_DTYPES = {"float32": (np.float32, TensorProto.FLOAT), "float64": (np.float64, TensorProto.DOUBLE)}


def _recurrent_states(layer) -> list[tuple[str, np.ndarray | None, int]]:
    """(state letter, learned initial value or None, width) of each state a recurrent layer carries."""
    states = [("h", layer.initial_h, layer.unit_output_size)]
    if isinstance(layer, LSTM):
        states.append(("c", layer.initial_c, layer.hidden_size))
    return states


# Layer kind -> the states its exported node reads and writes (kinds without state are absent).
STATES = {"LSTM": _recurrent_states, "GRU": _recurrent_states, "RNN": _recurrent_states}


def state_names(network: Network) -> list[tuple[str, str, tuple]]:
    """(state input name, state output name, shape) for every state tensor of the exported model."""
    out = []
    for k, layer in enumerate(network.layers):
        for s, _, width in STATES.get(layer.kind, lambda _: [])(layer):
            out.append((f"{s}_in_{k}", f"{s}_out_{k}", (layer.num_directions, 1, width)))
    return out


class _Builder:
    def __init__(self, dtype):
        self.np, self.tt = dtype
        self.nodes, self.inits, self.inputs, self.outputs = [], [], [], []
        self.n = 0

    def name(self, base: str) -> str:
        self.n += 1
        return f"{base}_{self.n}"

    def const(self, value, base: str, dtype=None) -> str:
        nm = self.name(base)
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype or self.np), nm))
        return nm

    def ints(self, value, base: str) -> str:
        return self.const(np.asarray(value, np.int64), base, np.int64)

    def node(self, op: str, inputs: list, n_out: int = 1, outputs: list | None = None, **kw) -> list:
        outs = outputs or [self.name(op.lower()) for _ in range(n_out)]
        self.nodes.append(helper.make_node(op, inputs, outs, name=self.name(op), **kw))
        return outs


def export_onnx(network: Network, *, dtype: str = "float32", path: str | Path | None = None,
                opset: int = OPSET) -> onnx.ModelProto:
    """Build (and write to ``path`` if given) the ONNX model described in the module docstring."""
    if dtype not in _DTYPES:
        raise ConversionError(f"export: dtype must be one of {sorted(_DTYPES)}, got {dtype!r}")
    network.validate()
    b = _Builder(_DTYPES[dtype])
    b.inputs.append(helper.make_tensor_value_info("x", b.tt, ["T", network.input_size]))
    cur = "x"
    for k, layer in enumerate(network.layers):
        exporter = EXPORTERS.get(layer.kind)
        if exporter is None:
            raise ConversionError(f"export: layer {k} ({type(layer).__name__}) has no ONNX form")
        cur = exporter(b, k, layer, cur)
    b.nodes.append(helper.make_node("Identity", [cur], ["y"], name="output"))
    b.outputs.insert(0, helper.make_tensor_value_info("y", b.tt, ["T", network.output_size]))
    graph = helper.make_graph(b.nodes, network.name or "streamlstm", b.inputs, b.outputs, b.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name="streamlstm")
    model.ir_version = 8
    onnx.checker.check_model(model)
    if path is not None:
        onnx.save(model, str(path))
    return model


def _recurrent(b: _Builder, k: int, layer, cur: str) -> str:
    op = type(layer).__name__
    if isinstance(layer, LSTM) and layer.proj is not None:
        raise ConversionError(f"export: layer {k} ({layer.label}) has a projection (proj_size), "
                              "which ONNX LSTM cannot express")
    D, H = layer.num_directions, layer.hidden_size
    G = layer.W.shape[1]
    x3 = b.node("Unsqueeze", [cur, b.ints([1], "axes")])[0]
    bias = np.concatenate([layer.Wb if layer.Wb is not None else np.zeros((D, G)),
                           layer.Rb if layer.Rb is not None else np.zeros((D, G))], axis=1)
    args = [x3, b.const(layer.W, f"{op}{k}_W"), b.const(layer.R, f"{op}{k}_R"),
            b.const(bias, f"{op}{k}_B"), ""]
    outs = [b.name(f"{op}{k}_Y")]
    for s, init, width in STATES[layer.kind](layer):
        nm = f"{s}_in_{k}"
        b.inputs.append(helper.make_tensor_value_info(nm, b.tt, [D, 1, width]))
        if init is not None:
            value = np.asarray(init).reshape(D, 1, width).astype(b.np)
            b.inits.append(numpy_helper.from_array(value, nm))
        args.append(nm)
        outs.append(f"{s}_out_{k}")
        b.outputs.append(helper.make_tensor_value_info(f"{s}_out_{k}", b.tt, [D, 1, width]))
    if isinstance(layer, LSTM) and layer.P is not None:
        args.append(b.const(layer.P, f"{op}{k}_P"))
    names = [a.name for a in layer.activations]
    alphas = [a.alpha for a in layer.activations if a.name in _NEEDS_ALPHA]
    betas = [a.beta for a in layer.activations if a.name in _NEEDS_BETA]
    kw = dict(hidden_size=H, direction=layer.direction, activations=names)
    if alphas:
        kw["activation_alpha"] = [float(v) for v in alphas]
    if betas:
        kw["activation_beta"] = [float(v) for v in betas]
    if layer.clip is not None:
        kw["clip"] = float(layer.clip)
    if isinstance(layer, LSTM):
        kw["input_forget"] = int(layer.input_forget)
    if isinstance(layer, GRU):
        kw["linear_before_reset"] = int(layer.linear_before_reset)
    y = b.node(op, args, outputs=outs, **kw)[0]
    flat = b.ints([0, -1], "shape")
    if D == 1:
        return b.node("Reshape", [y, flat])[0]
    if layer.merge == "concat":
        t = b.node("Transpose", [y], perm=[0, 2, 1, 3])[0]
        return b.node("Reshape", [t, flat])[0]
    fwd, bwd = b.node("Split", [y, b.ints([1, 1], "split")], n_out=2, axis=1)
    m = b.node("Mul" if layer.merge == "mul" else "Add", [fwd, bwd])[0]
    if layer.merge == "ave":
        m = b.node("Mul", [m, b.const(0.5, "half")])[0]
    return b.node("Reshape", [m, flat])[0]


def _dense(b: _Builder, k: int, layer: Dense, cur: str) -> str:
    args = [cur, b.const(layer.W, f"dense{k}_W")]
    if layer.b is not None:
        args.append(b.const(layer.b, f"dense{k}_b"))
    return _activation(b, layer.activation, b.node("Gemm", args, transB=1)[0])


def _activation_layer(b: _Builder, k: int, layer: Activation, cur: str) -> str:
    return _activation(b, layer.activation, cur)


def _activation(b: _Builder, a, cur: str) -> str:
    n = a.name
    if n == "Identity":
        return cur
    if n in ("Relu", "Tanh", "Sigmoid", "Softsign", "Softplus"):
        return b.node(n, [cur])[0]
    if n in ("LeakyRelu", "Elu", "ThresholdedRelu"):
        return b.node(n, [cur], alpha=float(a.alpha))[0]
    if n == "HardSigmoid":
        return b.node(n, [cur], alpha=float(a.alpha), beta=float(a.beta))[0]
    if n == "Softmax":
        return b.node("Softmax", [cur], axis=-1)[0]
    if n == "Affine":
        m = b.node("Mul", [cur, b.const(a.alpha, "alpha")])[0]
        return b.node("Add", [m, b.const(a.beta, "beta")])[0]
    if n == "ScaledTanh":
        m = b.node("Mul", [cur, b.const(a.beta, "beta")])[0]
        t = b.node("Tanh", [m])[0]
        return b.node("Mul", [t, b.const(a.alpha, "alpha")])[0]
    raise ConversionError(f"export: activation {n!r} has no ONNX form")


# Layer kind -> exporter(builder, layer index, layer, input tensor name) -> output tensor name.
EXPORTERS = {"LSTM": _recurrent, "GRU": _recurrent, "RNN": _recurrent, "Dense": _dense,
             "Activation": _activation_layer}
