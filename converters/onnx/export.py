"""Network -> ONNX model with explicit state inputs and outputs.

Layout of the exported model (``state_names`` lists the state tensors):

- input ``x``: [T, input_size] (T is dynamic; feed [1, input_size] to advance one frame);
- for recurrent layer k: input ``h_in_k`` [D, 1, H] (LSTM also ``c_in_k``); start a stream with
  zeros, or, when the layer has a learned initial state, with that state, which the model holds
  as the input's default value (an initializer of the same name: onnxruntime lists it under
  ``get_overridable_initializers()`` and uses it when the input is not fed); outputs
  ``h_out_k`` / ``c_out_k``, the state after the last frame: feed them back as ``h_in_k`` /
  ``c_in_k`` on the next call to stream;
- for a causal TimeConv1d k: ``t_in_k`` / ``t_out_k`` [1, C_in, padding[0]], its past inputs
  (oldest first; zeros start a stream);
- output ``y``: [T, output_size] (several named outputs: their concatenation).

A network that starts with an Embedding takes ``x`` as int64 token ids [T, 1], what
``nn.Embedding``'s export takes and onnxruntime users feed to Gather.

Recurrent layers become ONNX LSTM/GRU/RNN nodes (all activations written with explicit
alpha/beta, in onnxruntime's order: only activations that take alpha/beta consume them), Dense
layers Gemm, activations their ONNX op (Affine and ScaledTanh as Mul/Add/Tanh), the front-end and
plumbing units Gather/Conv/LayerNormalization/Reduce*/element-wise ops. import_onnx reads the
recurrent, Dense and Embedding parts back into an equivalent Network, state ports included. ``EXPORTERS`` maps each layer
kind to its exporter and ``STATES`` to the state tensors it carries: a new kind is an entry in each.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from streamlstm.errors import ConversionError
from streamlstm.network import (
    GRU, LSTM, Activation, Binary, Concat, Conv1d, Dense, Elementwise, Embedding, LayerNorm, Network, Rearrange,
    Reduce, TimeConv1d,
)

OPSET = 17
_NEEDS_ALPHA = {"LeakyRelu", "ThresholdedRelu", "Elu", "Affine", "ScaledTanh", "HardSigmoid"}
_NEEDS_BETA = {"Affine", "ScaledTanh", "HardSigmoid"}
_DTYPES = {"float32": (np.float32, TensorProto.FLOAT), "float64": (np.float64, TensorProto.DOUBLE)}


def _recurrent_states(layer) -> list[tuple[str, np.ndarray | None, tuple]]:
    """(state letter, learned initial value or None, shape) of each state a recurrent layer carries."""
    D = layer.num_directions
    states = [("h", layer.initial_h, (D, 1, layer.unit_output_size))]
    if isinstance(layer, LSTM):
        states.append(("c", layer.initial_c, (D, 1, layer.hidden_size)))
    return states


def _time_conv_states(layer: TimeConv1d) -> list[tuple[str, np.ndarray | None, tuple]]:
    """A causal convolution over time carries its last ``padding[0]`` inputs, (1, C_in, left)."""
    left = layer.padding[0]
    return [("t", None, (1, layer.in_channels, left))] if left else []


# Layer kind -> the states its exported node reads and writes (kinds without state are absent).
STATES = {"LSTM": _recurrent_states, "GRU": _recurrent_states, "RNN": _recurrent_states,
          "TimeConv1d": _time_conv_states}


def state_names(network: Network) -> list[tuple[str, str, tuple]]:
    """(state input name, state output name, shape) for every state tensor of the exported model."""
    out = []
    for k, layer in enumerate(network.layers):
        for s, _, shape in STATES.get(layer.kind, lambda _: [])(layer):
            out.append((f"{s}_in_{k}", f"{s}_out_{k}", shape))
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

    def state(self, k: int, letter: str, shape: tuple, init=None) -> str:
        """Declare state input ``{letter}_in_{k}`` and output ``{letter}_out_{k}``; the input's name."""
        nm = f"{letter}_in_{k}"
        self.inputs.append(helper.make_tensor_value_info(nm, self.tt, list(shape)))
        if init is not None:
            self.inits.append(numpy_helper.from_array(np.asarray(init).reshape(shape).astype(self.np), nm))
        self.outputs.append(helper.make_tensor_value_info(f"{letter}_out_{k}", self.tt, list(shape)))
        return nm

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
    reads_input = [layer for i, layer in enumerate(network.layers) if -1 in network.inputs_of(i)]
    ids = any(isinstance(layer, Embedding) for layer in reads_input)
    # token ids come in as int64, what nn.Embedding's export and onnxruntime users feed to Gather
    b.inputs.append(helper.make_tensor_value_info("x", TensorProto.INT64 if ids else b.tt,
                                                  ["T", network.input_size]))
    x_float = b.node("Cast", ["x"], to=b.tt)[0] if ids and any(
        not isinstance(layer, Embedding) for layer in reads_input) else "x"
    values: list[str] = []
    for k, layer in enumerate(network.layers):
        exporter = EXPORTERS.get(layer.kind)
        if exporter is None:
            raise ConversionError(f"export: layer {k} ({type(layer).__name__}) has no ONNX form")
        names = [("x" if isinstance(layer, Embedding) else x_float) if j < 0 else values[j]
                 for j in network.inputs_of(k)]
        values.append(exporter(b, k, layer, names[0] if layer.arity == 1 else names))
    b.nodes.append(helper.make_node("Identity", [values[-1]], ["y"], name="output"))
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
    for s, init, shape in STATES[layer.kind](layer):
        args.append(b.state(k, s, shape, init))
        outs.append(f"{s}_out_{k}")
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


def _flat(b: _Builder, cur: str) -> str:
    return b.node("Reshape", [cur, b.ints([0, -1], "shape")])[0]


def _embedding(b: _Builder, k: int, layer: Embedding, cur: str) -> str:
    # ids [T, 1] -> rows [T, 1, D] -> [T, D]; onnxruntime refuses an id outside [0, V)
    return _flat(b, b.node("Gather", [b.const(layer.table, f"embedding{k}_table"), cur], axis=0)[0])


def _conv_args(b: _Builder, k: int, layer, x3: str, base: str) -> list:
    args = [x3, b.const(layer.W, f"{base}{k}_W")]
    if layer.b is not None:
        args.append(b.const(layer.b, f"{base}{k}_b"))
    return args


def _conv1d(b: _Builder, k: int, layer: Conv1d, cur: str) -> str:
    # a frame is the (C_in, length) map; the T frames are the batch
    x3 = b.node("Reshape", [cur, b.ints([-1, layer.in_channels, layer.length], "shape")])[0]
    left, right = layer.padding
    pads = [left, right]
    if layer.pad_mode != "zeros" and left + right:
        mode = {"reflect": "reflect", "edge": "edge"}[layer.pad_mode]
        x3 = b.node("Pad", [x3, b.ints([0, 0, left, 0, 0, right], "pads")], mode=mode)[0]
        pads = [0, 0]
    y = b.node("Conv", _conv_args(b, k, layer, x3, "conv"), kernel_shape=[layer.taps], strides=[layer.stride],
               dilations=[layer.dilation], pads=pads, group=layer.groups)[0]
    return _activation(b, layer.activation, _flat(b, y))


def _time_conv1d(b: _Builder, k: int, layer: TimeConv1d, cur: str) -> str:
    # [T, C_in] -> [1, C_in, T], after the carried past inputs -> Conv -> [T, C_out];
    # the new past is the last ``left`` columns of what the Conv read
    left, right = layer.padding
    x3 = b.node("Unsqueeze", [b.node("Transpose", [cur], perm=[1, 0])[0], b.ints([0], "axes")])[0]
    if left:
        past = b.state(k, "t", (1, layer.in_channels, left))
        x3 = b.node("Concat", [past, x3], axis=2)[0]
        b.node("Slice", [x3, b.ints([-left], "starts"), b.ints([np.iinfo(np.int64).max], "ends"),
                         b.ints([2], "axes")], outputs=[f"t_out_{k}"])
    y = b.node("Conv", _conv_args(b, k, layer, x3, "tconv"), kernel_shape=[layer.taps],
               dilations=[layer.dilation], pads=[0, right], group=layer.groups)[0]
    y = b.node("Transpose", [b.node("Squeeze", [y, b.ints([0], "axes")])[0]], perm=[1, 0])[0]
    return _activation(b, layer.activation, y)


def _layer_norm(b: _Builder, k: int, layer: LayerNorm, cur: str) -> str:
    n = int(layer.gamma.size)
    x3 = b.node("Reshape", [cur, b.ints([0, -1, n], "shape")])[0]
    beta = layer.beta if layer.beta is not None else np.zeros(n)
    y = b.node("LayerNormalization", [x3, b.const(layer.gamma, f"norm{k}_gamma"), b.const(beta, f"norm{k}_beta")],
               axis=-1, epsilon=float(layer.eps))[0]
    return _flat(b, y)


def _gather_columns(b: _Builder, cur: str, index: np.ndarray, fill: float) -> str:
    """cur[:, index] with ``fill`` where the index is -1: a column of ``fill`` is appended, and
    Gather reads index -1 as the last column."""
    index = np.asarray(index, np.int64)
    if index.min() < 0:
        cur = b.node("Pad", [cur, b.ints([0, 0, 0, 1], "pads"), b.const(fill, "fill")], mode="constant")[0]
    return b.node("Gather", [cur, b.ints(index, "index")], axis=1)[0]


def _rearrange(b: _Builder, k: int, layer: Rearrange, cur: str) -> str:
    return _gather_columns(b, cur, layer.index, 0.0)


def _reduce(b: _Builder, k: int, layer: Reduce, cur: str) -> str:
    index = layer.index.astype(np.int64)
    g = _gather_columns(b, cur, index, -np.inf if layer.mode == "max" else 0.0)  # [T, O, M]
    if layer.mode == "max":
        return b.node("ReduceMax", [g], axes=[2], keepdims=0)[0]
    y = b.node("ReduceSum", [g, b.ints([2], "axes")], keepdims=0)[0]
    if layer.mode == "mean":
        y = b.node("Mul", [y, b.const(1.0 / (index >= 0).sum(axis=1), "scale")])[0]
    return y


_UNARY = {"sqrt": "Sqrt", "abs": "Abs", "neg": "Neg", "exp": "Exp", "log": "Log", "reciprocal": "Reciprocal",
          "erf": "Erf"}
_WITH_CONST = {"add": ("Add", False), "mul": ("Mul", False), "sub_from": ("Sub", True), "div": ("Div", False),
               "div_into": ("Div", True), "pow": ("Pow", False), "max": ("Max", False), "min": ("Min", False)}
_BINARY = {"add": "Add", "sub": "Sub", "mul": "Mul", "div": "Div", "max": "Max", "min": "Min", "pow": "Pow"}


def _elementwise(b: _Builder, k: int, layer: Elementwise, cur: str) -> str:
    if layer.op == "square":
        return b.node("Mul", [cur, cur])[0]
    if layer.op in _UNARY:
        return b.node(_UNARY[layer.op], [cur])[0]
    op, swap = _WITH_CONST[layer.op]
    c = b.const(layer.c, f"elem{k}_c")
    return b.node(op, [c, cur] if swap else [cur, c])[0]


def _binary(b: _Builder, k: int, layer: Binary, cur: list) -> str:
    return b.node(_BINARY[layer.op], list(cur))[0]


def _concat(b: _Builder, k: int, layer: Concat, cur: list) -> str:
    return b.node("Concat", list(cur), axis=1)[0]


# Layer kind -> exporter(builder, layer index, layer, input tensor name) -> output tensor name
# (a layer that reads several values, Binary and Concat, gets the list of their names).
EXPORTERS = {"LSTM": _recurrent, "GRU": _recurrent, "RNN": _recurrent, "Dense": _dense,
             "Activation": _activation_layer, "Embedding": _embedding, "Conv1d": _conv1d,
             "TimeConv1d": _time_conv1d, "LayerNorm": _layer_norm, "Rearrange": _rearrange, "Reduce": _reduce,
             "Elementwise": _elementwise, "Binary": _binary, "Concat": _concat}
