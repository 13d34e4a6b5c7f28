"""An ONNX graph advancing a batch of N independent streams by one frame, for the throughput bench.

``model.to_onnx()`` exports batch 1 (its time axis is the sequence). Here the ONNX batch axis
holds the streams: input ``x`` [N, I]; per recurrent layer k, state inputs ``h_in_k`` (and
``c_in_k``) [1, N, H] and outputs ``h_out_k`` / ``c_out_k``; output ``y`` [N, O]. N is dynamic.
The caller keeps every stream's state and gathers/scatters the rows of the streams it runs.
Supports the forward-only networks of the zoo (LSTM/GRU/RNN without projection, Dense,
elementwise activations, Softmax).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from .. import GRU, LSTM, RNN, Activation, Dense, Network

_NEEDS_ALPHA = {"LeakyRelu", "ThresholdedRelu", "Elu", "Affine", "ScaledTanh", "HardSigmoid"}
_NEEDS_BETA = {"Affine", "ScaledTanh", "HardSigmoid"}
_SIMPLE = {"Relu", "Tanh", "Sigmoid", "Softsign", "Softplus"}


def state_specs(network: Network) -> list[tuple[str, str, int]]:
    """(input name, output name, width) of every state tensor, in graph input order."""
    out = []
    for k, layer in enumerate(network.layers):
        if isinstance(layer, (LSTM, GRU, RNN)):
            out.append((f"h_in_{k}", f"h_out_{k}", layer.hidden_size))
            if isinstance(layer, LSTM):
                out.append((f"c_in_{k}", f"c_out_{k}", layer.hidden_size))
    return out


def batch_onnx(network: Network, dtype=np.float32) -> onnx.ModelProto:
    """The batched one-frame ONNX model of ``network`` (see module docstring)."""
    tt = TensorProto.FLOAT if np.dtype(dtype) == np.float32 else TensorProto.DOUBLE
    nodes, inits, inputs, outputs = [], [], [], []

    def const(name, value):
        inits.append(numpy_helper.from_array(np.asarray(value, dtype), name))
        return name

    inits.append(numpy_helper.from_array(np.array([0], np.int64), "ax0"))
    inits.append(numpy_helper.from_array(np.array([1], np.int64), "ax1"))
    inputs.append(helper.make_tensor_value_info("x", tt, ["N", network.input_size]))
    nodes.append(helper.make_node("Unsqueeze", ["x", "ax0"], ["x3"]))
    cur = "x3"  # [1, N, width]
    for k, layer in enumerate(network.layers):
        if isinstance(layer, (LSTM, GRU, RNN)):
            if layer.direction != "forward" or getattr(layer, "proj", None) is not None:
                raise ValueError(f"layer {k}: only forward layers without projection are supported")
            op, H = type(layer).__name__, layer.hidden_size
            G = layer.W.shape[1]
            bias = np.concatenate([layer.Wb if layer.Wb is not None else np.zeros((1, G)),
                                   layer.Rb if layer.Rb is not None else np.zeros((1, G))], axis=1)
            args = [cur, const(f"W{k}", layer.W), const(f"R{k}", layer.R), const(f"B{k}", bias), "",
                    f"h_in_{k}"]
            outs = [f"Y{k}", f"h_out_{k}"]
            if op == "LSTM":
                args.append(f"c_in_{k}")
                outs.append(f"c_out_{k}")
                if layer.P is not None:
                    args.append(const(f"P{k}", layer.P))
            for name in args[5:7] if op == "LSTM" else args[5:6]:
                inputs.append(helper.make_tensor_value_info(name, tt, [1, "N", H]))
            for name in outs[1:]:
                outputs.append(helper.make_tensor_value_info(name, tt, [1, "N", H]))
            kw = dict(hidden_size=H, activations=[a.name for a in layer.activations])
            alphas = [float(a.alpha) for a in layer.activations if a.name in _NEEDS_ALPHA]
            betas = [float(a.beta) for a in layer.activations if a.name in _NEEDS_BETA]
            if alphas:
                kw["activation_alpha"] = alphas
            if betas:
                kw["activation_beta"] = betas
            if layer.clip is not None:
                kw["clip"] = float(layer.clip)
            if op == "LSTM":
                kw["input_forget"] = int(layer.input_forget)
            if op == "GRU":
                kw["linear_before_reset"] = int(layer.linear_before_reset)
            nodes.append(helper.make_node(op, args, outs, **kw))
            nodes.append(helper.make_node("Squeeze", [f"Y{k}", "ax1"], [f"Y{k}s"]))
            cur = f"Y{k}s"
        elif isinstance(layer, Dense):
            nodes.append(helper.make_node("MatMul", [cur, const(f"Wd{k}", layer.W.T)], [f"mm{k}"]))
            cur = f"mm{k}"
            if layer.b is not None:
                nodes.append(helper.make_node("Add", [cur, const(f"bd{k}", layer.b)], [f"add{k}"]))
                cur = f"add{k}"
            cur = _activation(nodes, layer.activation.name, cur, k)
        elif isinstance(layer, Activation):
            cur = _activation(nodes, layer.activation.name, cur, k)
        else:
            raise ValueError(f"layer {k}: {type(layer).__name__} is not supported")
    nodes.append(helper.make_node("Squeeze", [cur, "ax0"], ["y"]))
    outputs.insert(0, helper.make_tensor_value_info("y", tt, ["N", network.output_size]))
    graph = helper.make_graph(nodes, "batch", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def _activation(nodes: list, name: str, cur: str, k: int) -> str:
    if name == "Identity":
        return cur
    out = f"act{k}"
    if name in _SIMPLE:
        nodes.append(helper.make_node(name, [cur], [out]))
    elif name == "Softmax":
        nodes.append(helper.make_node("Softmax", [cur], [out], axis=-1))
    else:
        raise ValueError(f"layer {k}: activation {name} is not supported")
    return out
