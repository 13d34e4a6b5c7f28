"""Float64 NumPy reference of a streamlstm Network, written from the ONNX operator equations.

Independent of the engine: it uses only the IR classes of ``streamlstm.network`` and plain NumPy,
one time step at a time, so tests can compare the kernels (and the converters) against it.

``reference_run(network, X, state=None) -> (Y, state)``: X is (T, I), Y is (T, O). ``state`` is a
list with one entry per layer: None for Dense/Activation, else ``{"h": (D, Hr), "c": (D, H)}``
(``"c"`` only for LSTM). With ``state=None`` every recurrent layer starts from its
``initial_h``/``initial_c`` (zeros where absent); a TimeConv1d's entry is ``{"past": (left,
C_in)}``, its last inputs. Layers read the values ``network.inputs_of(i)`` names. Reverse directions walk t = T-1 .. 0 and store
each output at its input's time position; the returned state of a reverse direction is the one
after t = 0.

``inputs`` (a function, default none) is applied to the input vector of every product over a
matrix a Plan stores in its weight format (Dense, convolution windows, recurrent input and
recurrent matrices, a GRU's z and r rows): ``weights="bf16dot"`` rounds those inputs to bf16,
``weights="int8dot"`` quantises them per block. A convolution's product input is the window of
one output position (Conv1d: every input channel's taps, channel-major; TimeConv1d: every
tap's channels, tap-major), as a Plan stores its rows.
"""

from __future__ import annotations

import numpy as np

import math

from streamlstm.network import (
    GRU, LSTM, RNN, Act, Activation, Binary, Concat, Conv1d, Dense, Elementwise, Embedding, LayerNorm, Network,
    Rearrange, Reduce, TimeConv1d,
)


def activation(a: Act, x: np.ndarray) -> np.ndarray:
    """An ONNX RNN activation (or Identity/Softmax) applied to x, in float64."""
    x = np.asarray(x, dtype=np.float64)
    n, al, be = a.name, a.alpha, a.beta
    if n == "Relu":
        return np.maximum(x, 0.0)
    if n == "Tanh":
        return np.tanh(x)
    if n == "Sigmoid":
        return 0.5 * (1.0 + np.tanh(0.5 * x))
    if n == "Affine":
        return al * x + be
    if n == "LeakyRelu":
        return np.where(x >= 0, x, al * x)
    if n == "ThresholdedRelu":
        return np.where(x > al, x, 0.0)
    if n == "ScaledTanh":
        return al * np.tanh(be * x)
    if n == "HardSigmoid":
        return np.clip(al * x + be, 0.0, 1.0)
    if n == "Elu":
        return np.where(x >= 0, x, al * np.expm1(np.minimum(x, 0.0)))
    if n == "Softsign":
        return x / (1.0 + np.abs(x))
    if n == "Softplus":
        return np.logaddexp(0.0, x)
    if n == "Identity":
        return x.copy()
    if n == "Softmax":
        e = np.exp(x - np.max(x))
        return e / np.sum(e)
    raise ValueError(f"unknown activation {n!r}")


def _clip(layer, x: np.ndarray) -> np.ndarray:
    return x if layer.clip is None else np.clip(x, -layer.clip, layer.clip)


def _bias(b: np.ndarray | None, d: int, n: int) -> np.ndarray:
    return np.zeros(n) if b is None else b[d]


def _same(x: np.ndarray) -> np.ndarray:
    return x


def lstm_cell(layer: LSTM, d: int, x: np.ndarray, h: np.ndarray, c: np.ndarray, inputs=_same):
    """One ONNX LSTM step of direction d (plus the PyTorch projection); returns (h, c)."""
    H = layer.hidden_size
    f, g, hh = layer.activations[3 * d: 3 * d + 3]
    z = layer.W[d] @ inputs(x) + layer.R[d] @ inputs(h) + _bias(layer.Wb, d, 4 * H) + _bias(layer.Rb, d, 4 * H)
    zi, zo, zf, zc = z[:H], z[H:2 * H], z[2 * H:3 * H], z[3 * H:]
    if layer.P is not None:
        pi, po, pf = layer.P[d, :H], layer.P[d, H:2 * H], layer.P[d, 2 * H:]
    else:
        pi = po = pf = np.zeros(H)
    i = activation(f, _clip(layer, zi + pi * c))
    if layer.input_forget:
        fg = 1.0 - i
    else:
        fg = activation(f, _clip(layer, zf + pf * c))
    ct = activation(g, _clip(layer, zc))
    c_new = fg * c + i * ct
    o = activation(f, _clip(layer, zo + po * c_new))
    h_new = o * activation(hh, c_new)
    if layer.proj is not None:
        h_new = layer.proj[d] @ h_new
    return h_new, c_new


def gru_cell(layer: GRU, d: int, x: np.ndarray, h: np.ndarray, inputs=_same) -> np.ndarray:
    """One ONNX GRU step of direction d; returns h."""
    H = layer.hidden_size
    f, g = layer.activations[2 * d: 2 * d + 2]
    W, R = layer.W[d], layer.R[d]
    wb, rb = _bias(layer.Wb, d, 3 * H), _bias(layer.Rb, d, 3 * H)
    xw = W @ inputs(x) + wb
    hr = R[:2 * H] @ inputs(h) + rb[:2 * H]
    z = activation(f, _clip(layer, xw[:H] + hr[:H]))
    r = activation(f, _clip(layer, xw[H:2 * H] + hr[H:]))
    if layer.linear_before_reset:
        pre = xw[2 * H:] + r * (R[2 * H:] @ h + rb[2 * H:])
    else:
        pre = xw[2 * H:] + R[2 * H:] @ (r * h) + rb[2 * H:]
    ht = activation(g, _clip(layer, pre))
    return (1.0 - z) * ht + z * h


def rnn_cell(layer: RNN, d: int, x: np.ndarray, h: np.ndarray, inputs=_same) -> np.ndarray:
    """One ONNX RNN step of direction d; returns h."""
    H = layer.hidden_size
    pre = layer.W[d] @ inputs(x) + layer.R[d] @ inputs(h) + _bias(layer.Wb, d, H) + _bias(layer.Rb, d, H)
    return activation(layer.activations[d], _clip(layer, pre))


def initial_state(layer) -> dict | None:
    """The state a fresh stream starts from: learned initial states or zeros."""
    if not isinstance(layer, (LSTM, GRU, RNN)):
        return None
    D, Hr = layer.num_directions, layer.unit_output_size
    h = np.zeros((D, Hr)) if layer.initial_h is None else np.array(layer.initial_h, dtype=np.float64)
    st = {"h": h}
    if isinstance(layer, LSTM):
        H = layer.hidden_size
        st["c"] = np.zeros((D, H)) if layer.initial_c is None else np.array(layer.initial_c, dtype=np.float64)
    return st


def _merge(layer, fwd: np.ndarray, bwd: np.ndarray) -> np.ndarray:
    m = layer.merge
    if m == "concat":
        return np.concatenate([fwd, bwd], axis=1)
    if m == "sum":
        return fwd + bwd
    if m == "mul":
        return fwd * bwd
    if m == "ave":
        return 0.5 * (fwd + bwd)
    raise ValueError(f"unknown merge {m!r}")


def recurrent_run(layer, X: np.ndarray, st: dict, inputs=_same) -> tuple[np.ndarray, dict]:
    """Run one recurrent layer over X (T, I) from state st; returns (Y, new state)."""
    T = X.shape[0]
    D = layer.num_directions
    reverse = [layer.direction == "reverse"] if D == 1 else [False, True]
    new = {k: v.copy() for k, v in st.items()}
    outs = []
    for d in range(D):
        Yd = np.zeros((T, layer.unit_output_size))
        h = new["h"][d].copy()
        c = new["c"][d].copy() if "c" in new else None
        for t in (range(T - 1, -1, -1) if reverse[d] else range(T)):
            if isinstance(layer, LSTM):
                h, c = lstm_cell(layer, d, X[t], h, c, inputs)
            elif isinstance(layer, GRU):
                h = gru_cell(layer, d, X[t], h, inputs)
            else:
                h = rnn_cell(layer, d, X[t], h, inputs)
            Yd[t] = c if getattr(layer, "output", "h") == "c" else h
        new["h"][d] = h
        if c is not None:
            new["c"][d] = c
        outs.append(Yd)
    Y = outs[0] if D == 1 else _merge(layer, outs[0], outs[1])
    return Y, new


def conv1d_frame(layer: Conv1d, x: np.ndarray, inputs=_same) -> np.ndarray:
    """A frame-local Conv1d of one flat (C_in * length) frame, by the definition."""
    Ci, L = layer.in_channels, layer.length
    mode = {"zeros": "constant", "reflect": "reflect", "edge": "edge"}[layer.pad_mode]
    xp = np.pad(np.asarray(x, np.float64).reshape(Ci, L), ((0, 0), layer.padding), mode=mode)
    Co, Cg, k = layer.W.shape
    per_group = Co // layer.groups
    Lo = layer.out_length
    y = np.zeros((Co, Lo))
    for p in range(Lo):
        # the window of every input channel, channel-major (the product's input vector)
        window = inputs(xp[:, [p * layer.stride + j * layer.dilation for j in range(k)]].reshape(-1)).reshape(Ci, k)
        for o in range(Co):
            g = o // per_group
            acc = 0.0 if layer.b is None else layer.b[o]
            for c in range(Cg):
                for j in range(k):
                    acc += layer.W[o, c, j] * window[g * Cg + c, j]
            y[o, p] = acc
    return activation(layer.activation, y).reshape(-1)


def time_conv(layer: TimeConv1d, X: np.ndarray, past: np.ndarray, inputs=_same) -> tuple[np.ndarray, np.ndarray]:
    """A TimeConv1d over X (T, C_in) after the inputs ``past``; returns (Y, the new past)."""
    left, right = layer.padding
    full = np.concatenate([past, X, np.zeros((right, X.shape[1]))])
    Co, Cg, k = layer.W.shape
    per_group = Co // layer.groups
    Y = np.zeros((X.shape[0], Co))
    for t in range(X.shape[0]):
        # the inputs of every tap, tap-major (the product's input vector)
        window = inputs(full[[t + j * layer.dilation for j in range(k)]].reshape(-1)).reshape(k, -1)
        for o in range(Co):
            g = o // per_group
            acc = 0.0 if layer.b is None else layer.b[o]
            for j in range(k):
                acc += layer.W[o, :, j] @ window[j, g * Cg:(g + 1) * Cg]
            Y[t, o] = acc
    seen = np.concatenate([past, X])
    return activation(layer.activation, Y), seen[len(seen) - left:] if left else past


def _elementwise(op: str, x: np.ndarray, c) -> np.ndarray:
    ops = {"add": lambda: x + c, "mul": lambda: x * c, "sub_from": lambda: c - x, "div": lambda: x / c,
           "div_into": lambda: c / x, "pow": lambda: np.power(x, c), "max": lambda: np.maximum(x, c),
           "min": lambda: np.minimum(x, c), "sqrt": lambda: np.sqrt(x), "abs": lambda: np.abs(x),
           "neg": lambda: -x, "exp": lambda: np.exp(x), "log": lambda: np.log(x), "square": lambda: x * x,
           "reciprocal": lambda: 1.0 / x, "erf": lambda: np.vectorize(math.erf)(x)}
    return ops[op]()


def _binary(op: str, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide, "max": np.maximum,
            "min": np.minimum, "pow": np.power}[op](a, b)


def frame_layer(layer, ins: list[np.ndarray], inputs=_same) -> np.ndarray:
    """A layer without state over every frame of its inputs (each (T, width))."""
    X = ins[0]
    rows = []
    for t in range(X.shape[0]):
        x = X[t]
        if isinstance(layer, Dense):
            b = np.zeros(layer.output_size) if layer.b is None else layer.b
            y = activation(layer.activation, layer.W @ inputs(x) + b)
        elif isinstance(layer, Activation):
            y = activation(layer.activation, x)
        elif isinstance(layer, Embedding):
            y = layer.table[int(x[0])]
        elif isinstance(layer, Conv1d):
            y = conv1d_frame(layer, x, inputs)
        elif isinstance(layer, LayerNorm):
            n = layer.gamma.size
            g = x.reshape(-1, n)
            mean = g.mean(axis=1, keepdims=True)
            var = ((g - mean) ** 2).mean(axis=1, keepdims=True)
            beta = 0.0 if layer.beta is None else layer.beta
            y = ((g - mean) / np.sqrt(var + layer.eps) * layer.gamma + beta).reshape(-1)
        elif isinstance(layer, Rearrange):
            idx = layer.index.astype(int)
            y = np.where(idx >= 0, x[np.maximum(idx, 0)], 0.0)
        elif isinstance(layer, Reduce):
            idx = layer.index.astype(int)
            y = np.zeros(idx.shape[0])
            for j, grp in enumerate(idx):
                vals = x[grp[grp >= 0]]
                y[j] = {"sum": np.sum, "mean": np.mean, "max": np.max}[layer.mode](vals)
        elif isinstance(layer, Elementwise):
            y = _elementwise(layer.op, x, layer.c)
        elif isinstance(layer, Binary):
            y = _binary(layer.op, x, ins[1][t])
        elif isinstance(layer, Concat):
            y = np.concatenate([v[t] for v in ins])
        else:
            raise TypeError(f"unknown layer {type(layer).__name__}")
        rows.append(np.asarray(y, dtype=np.float64))
    width = layer.output_width_of(tuple(v.shape[1] for v in ins)) if layer.arity != 1 else \
        layer.output_width(X.shape[1])
    return np.stack(rows) if rows else np.zeros((0, width))


def reference_run(network: Network, X, state: list | None = None, *, inputs=None) -> tuple[np.ndarray, list]:
    """Run the whole network over X (T, I) in float64; returns (Y (T, O), state after the last frame)."""
    inputs = inputs or _same
    X = np.array(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] != network.input_size:
        raise ValueError(f"X must be (T, {network.input_size}), got {X.shape}")
    if state is None:
        state = [{"past": np.zeros((l.padding[0], l.in_channels))} if isinstance(l, TimeConv1d)
                 else initial_state(l) for l in network.layers]
    values = {-1: X}
    new_state = []
    for i, (layer, st) in enumerate(zip(network.layers, state)):
        ins = [values[j] for j in network.inputs_of(i)]
        if isinstance(layer, (LSTM, GRU, RNN)):
            Y, st = recurrent_run(layer, ins[0], st, inputs)
        elif isinstance(layer, TimeConv1d):
            Y, past = time_conv(layer, ins[0], st["past"], inputs)
            st = {"past": past}
        else:
            Y = frame_layer(layer, ins, inputs)
        values[i] = Y
        new_state.append(st)
    return values[len(network.layers) - 1], new_state
