"""Float64 NumPy reference of a streamlstm Network, written from the ONNX operator equations.

Independent of the engine: it uses only the IR classes of ``streamlstm.network`` and plain NumPy,
one time step at a time, so tests can compare the kernels (and the converters) against it.

``reference_run(network, X, state=None) -> (Y, state)``: X is (T, I), Y is (T, O). ``state`` is a
list with one entry per layer: None for Dense/Activation, else ``{"h": (D, Hr), "c": (D, H)}``
(``"c"`` only for LSTM). With ``state=None`` every recurrent layer starts from its
``initial_h``/``initial_c`` (zeros where absent). Reverse directions walk t = T-1 .. 0 and store
each output at its input's time position; the returned state of a reverse direction is the one
after t = 0.
"""

from __future__ import annotations

import numpy as np

from streamlstm.network import GRU, LSTM, RNN, Act, Activation, Dense, Network


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


def lstm_cell(layer: LSTM, d: int, x: np.ndarray, h: np.ndarray, c: np.ndarray):
    """One ONNX LSTM step of direction d (plus the PyTorch projection); returns (h, c)."""
    H = layer.hidden_size
    f, g, hh = layer.activations[3 * d: 3 * d + 3]
    z = layer.W[d] @ x + layer.R[d] @ h + _bias(layer.Wb, d, 4 * H) + _bias(layer.Rb, d, 4 * H)
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


def gru_cell(layer: GRU, d: int, x: np.ndarray, h: np.ndarray) -> np.ndarray:
    """One ONNX GRU step of direction d; returns h."""
    H = layer.hidden_size
    f, g = layer.activations[2 * d: 2 * d + 2]
    W, R = layer.W[d], layer.R[d]
    wb, rb = _bias(layer.Wb, d, 3 * H), _bias(layer.Rb, d, 3 * H)
    xw = W @ x + wb
    hr = R[:2 * H] @ h + rb[:2 * H]
    z = activation(f, _clip(layer, xw[:H] + hr[:H]))
    r = activation(f, _clip(layer, xw[H:2 * H] + hr[H:]))
    if layer.linear_before_reset:
        pre = xw[2 * H:] + r * (R[2 * H:] @ h + rb[2 * H:])
    else:
        pre = xw[2 * H:] + R[2 * H:] @ (r * h) + rb[2 * H:]
    ht = activation(g, _clip(layer, pre))
    return (1.0 - z) * ht + z * h


def rnn_cell(layer: RNN, d: int, x: np.ndarray, h: np.ndarray) -> np.ndarray:
    """One ONNX RNN step of direction d; returns h."""
    H = layer.hidden_size
    pre = layer.W[d] @ x + layer.R[d] @ h + _bias(layer.Wb, d, H) + _bias(layer.Rb, d, H)
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


def recurrent_run(layer, X: np.ndarray, st: dict) -> tuple[np.ndarray, dict]:
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
                h, c = lstm_cell(layer, d, X[t], h, c)
            elif isinstance(layer, GRU):
                h = gru_cell(layer, d, X[t], h)
            else:
                h = rnn_cell(layer, d, X[t], h)
            Yd[t] = h
        new["h"][d] = h
        if c is not None:
            new["c"][d] = c
        outs.append(Yd)
    Y = outs[0] if D == 1 else _merge(layer, outs[0], outs[1])
    return Y, new


def reference_run(network: Network, X, state: list | None = None) -> tuple[np.ndarray, list]:
    """Run the whole network over X (T, I) in float64; returns (Y (T, O), state after the last frame)."""
    Y = np.array(X, dtype=np.float64)
    if Y.ndim != 2 or Y.shape[1] != network.input_size:
        raise ValueError(f"X must be (T, {network.input_size}), got {Y.shape}")
    if state is None:
        state = [initial_state(l) for l in network.layers]
    new_state = []
    for layer, st in zip(network.layers, state):
        if isinstance(layer, (LSTM, GRU, RNN)):
            Y, st = recurrent_run(layer, Y, st)
        elif isinstance(layer, Dense):
            b = np.zeros(layer.output_size) if layer.b is None else layer.b
            Y = np.stack([activation(layer.activation, layer.W @ y + b) for y in Y]) if len(Y) else \
                np.zeros((0, layer.output_size))
        elif isinstance(layer, Activation):
            Y = np.stack([activation(layer.activation, y) for y in Y]) if len(Y) else Y.copy()
        else:
            raise TypeError(f"unknown layer {type(layer).__name__}")
        new_state.append(st)
    return Y, new_state
