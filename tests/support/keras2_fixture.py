"""Keras 2 model files without TensorFlow: writers for the documented HDF5 layout and a float64
NumPy forward pass written from the Keras 2 layer equations (on Keras's own weight layout).

Layout written (as ``keras.saving.legacy.hdf5_format.save_model_to_hdf5`` does): root attributes
``keras_version``, ``backend`` and ``model_config`` (JSON of ``{"class_name", "config"}``); group
``model_weights`` with attributes ``layer_names``/``backend``/``keras_version`` and one group per
layer whose attribute ``weight_names`` lists its datasets, stored at those (nested) paths, e.g.
``model_weights/lstm/lstm/lstm_cell/kernel:0``. Weights-only files (``save_weights``) put the
layer groups at the root. Strings are written as bytes, as h5py 2 did.

A layer spec is ``{"class_name", "config", "weights": [(name, array)]}``; Bidirectional and
TimeDistributed specs hold their inner spec under ``"inner"``.
"""

from __future__ import annotations

import json

import h5py
import numpy as np

# ---------------------------------------------------------------------------------- specs


def _rnn_config(name: str, units: int, **kw) -> dict:
    cfg = {"name": name, "trainable": True, "dtype": "float32", "return_sequences": True,
           "return_state": False, "go_backwards": False, "stateful": False, "unroll": False,
           "time_major": False, "units": units, "activation": "tanh", "recurrent_activation": "sigmoid",
           "use_bias": True, "kernel_initializer": {"class_name": "GlorotUniform", "config": {"seed": None}},
           "recurrent_initializer": {"class_name": "Orthogonal", "config": {"gain": 1.0, "seed": None}},
           "bias_initializer": {"class_name": "Zeros", "config": {}}, "kernel_regularizer": None,
           "recurrent_regularizer": None, "bias_regularizer": None, "activity_regularizer": None,
           "kernel_constraint": None, "recurrent_constraint": None, "bias_constraint": None,
           "dropout": 0.0, "recurrent_dropout": 0.0, "implementation": 2}
    cfg.update(kw)
    return cfg


def _w(rng: np.random.Generator, *shape: int, scale: float = 0.5) -> np.ndarray:
    return (rng.uniform(-scale, scale, size=shape)).astype(np.float32)


def _recurrent_weights(rng, I: int, H: int, gates: int) -> tuple[np.ndarray, np.ndarray]:
    kernel = _w(rng, I, gates * H, scale=1.0 / np.sqrt(I))
    rec = _w(rng, H, gates * H, scale=0.9 / np.sqrt(H))
    return kernel, rec


def lstm(rng, name: str, I: int, H: int, cell: str | None = "lstm_cell", **kw) -> dict:
    """An LSTM spec; ``cell=None`` names weights the Keras 2.2 way (``lstm_1/kernel:0``)."""
    cfg = _rnn_config(name, H, unit_forget_bias=True, **kw)
    kernel, rec = _recurrent_weights(rng, I, H, 4)
    arrays = [kernel, rec] + ([_w(rng, 4 * H)] if cfg["use_bias"] else [])
    return {"class_name": "LSTM", "config": cfg, "weights": _names(name, cell, arrays)}


def gru(rng, name: str, I: int, H: int, reset_after: bool = True, cell: str | None = "gru_cell", **kw) -> dict:
    cfg = _rnn_config(name, H, reset_after=reset_after, **kw)
    kernel, rec = _recurrent_weights(rng, I, H, 3)
    bias = _w(rng, 2, 3 * H) if reset_after else _w(rng, 3 * H)
    arrays = [kernel, rec] + ([bias] if cfg["use_bias"] else [])
    return {"class_name": "GRU", "config": cfg, "weights": _names(name, cell, arrays)}


def simple_rnn(rng, name: str, I: int, H: int, cell: str | None = "simple_rnn_cell", **kw) -> dict:
    cfg = _rnn_config(name, H, **kw)
    cfg.pop("recurrent_activation")
    kernel, rec = _recurrent_weights(rng, I, H, 1)
    arrays = [kernel, rec] + ([_w(rng, H)] if cfg["use_bias"] else [])
    return {"class_name": "SimpleRNN", "config": cfg, "weights": _names(name, cell, arrays)}


def cudnn_lstm(rng, name: str, I: int, H: int, **kw) -> dict:
    """CuDNNLSTM: bias (8H) = input biases then recurrent biases, gates i,f,c,o."""
    cfg = {k: v for k, v in _rnn_config(name, H, unit_forget_bias=True, **kw).items()
           if k not in ("activation", "recurrent_activation", "use_bias", "dropout", "recurrent_dropout",
                        "implementation", "unroll")}
    kernel, rec = _recurrent_weights(rng, I, H, 4)
    return {"class_name": "CuDNNLSTM", "config": cfg, "weights": _names(name, None, [kernel, rec, _w(rng, 8 * H)])}


def cudnn_gru(rng, name: str, I: int, H: int, **kw) -> dict:
    """CuDNNGRU: bias (6H) = input biases then recurrent biases, gates z,r,h."""
    cfg = {k: v for k, v in _rnn_config(name, H, **kw).items()
           if k not in ("activation", "recurrent_activation", "use_bias", "dropout", "recurrent_dropout",
                        "implementation", "unroll")}
    kernel, rec = _recurrent_weights(rng, I, H, 3)
    return {"class_name": "CuDNNGRU", "config": cfg, "weights": _names(name, None, [kernel, rec, _w(rng, 6 * H)])}


def dense(rng, name: str, I: int, O: int, activation: str = "linear", use_bias: bool = True) -> dict:
    cfg = {"name": name, "trainable": True, "dtype": "float32", "units": O, "activation": activation,
           "use_bias": use_bias, "kernel_initializer": {"class_name": "GlorotUniform", "config": {"seed": None}},
           "bias_initializer": {"class_name": "Zeros", "config": {}}, "kernel_regularizer": None,
           "bias_regularizer": None, "activity_regularizer": None, "kernel_constraint": None, "bias_constraint": None}
    arrays = [_w(rng, I, O, scale=1.0 / np.sqrt(I))] + ([_w(rng, O)] if use_bias else [])
    return {"class_name": "Dense", "config": cfg, "weights": _names(name, None, arrays, ("kernel", "bias"))}


def embedding(rng, name: str, V: int, D: int, mask_zero: bool = False) -> dict:
    """An Embedding spec (Keras 2 ``embeddings:0``); its input is a sequence of token ids."""
    cfg = {"name": name, "trainable": True, "batch_input_shape": [None, None], "dtype": "float32",
           "input_dim": V, "output_dim": D, "embeddings_initializer": {"class_name": "RandomUniform",
                                                                     "config": {"minval": -0.05, "maxval": 0.05}},
           "embeddings_regularizer": None, "activity_regularizer": None, "embeddings_constraint": None,
           "mask_zero": mask_zero, "input_length": None}
    return {"class_name": "Embedding", "config": cfg, "weights": [(f"{name}/embeddings:0", _w(rng, V, D, scale=1.0))]}


def conv1d(rng, name: str, I: int, O: int, k: int, padding: str = "causal", dilation: int = 1,
           activation: str = "linear") -> dict:
    """A Conv1D spec (TF 2.x config; kernel (k, I, O))."""
    cfg = {"name": name, "trainable": True, "dtype": "float32", "filters": O, "kernel_size": [k], "strides": [1],
           "padding": padding, "data_format": "channels_last", "dilation_rate": [dilation], "groups": 1,
           "activation": activation, "use_bias": True,
           "kernel_initializer": {"class_name": "GlorotUniform", "config": {"seed": None}},
           "bias_initializer": {"class_name": "Zeros", "config": {}}, "kernel_regularizer": None,
           "bias_regularizer": None, "activity_regularizer": None, "kernel_constraint": None, "bias_constraint": None}
    arrays = [_w(rng, k, I, O, scale=1.0 / np.sqrt(k * I)), _w(rng, O)]
    return {"class_name": "Conv1D", "config": cfg, "weights": _names(name, None, arrays, ("kernel", "bias"))}


def batch_norm(rng, name: str, C: int, epsilon: float = 1e-3) -> dict:
    """A BatchNormalization spec with non-trivial moving statistics."""
    cfg = {"name": name, "trainable": True, "dtype": "float32", "axis": [2], "momentum": 0.99, "epsilon": epsilon,
           "center": True, "scale": True}
    arrays = [rng.uniform(0.5, 1.5, C).astype(np.float32), _w(rng, C), _w(rng, C, scale=1.0),
              rng.uniform(0.5, 2.0, C).astype(np.float32)]
    return {"class_name": "BatchNormalization", "config": cfg,
            "weights": _names(name, None, arrays, ("gamma", "beta", "moving_mean", "moving_variance"))}


def time_distributed(name: str, inner: dict) -> dict:
    cfg = {"name": name, "trainable": True, "dtype": "float32",
           "layer": {"class_name": inner["class_name"], "config": inner["config"]}}
    ws = [(f"{name}/{n.split('/')[-1]}", a) for n, a in inner["weights"]]
    return {"class_name": "TimeDistributed", "config": cfg, "weights": ws, "inner": inner}


def bidirectional(rng, name: str, make, I: int, H: int, merge_mode: str = "concat", **kw) -> dict:
    """``make`` is one of the recurrent builders above; both directions share its config."""
    fwd = make(rng, f"forward_{name}", I, H, **kw)
    bwd = make(rng, f"backward_{name}", I, H, **kw)
    bwd["config"] = dict(bwd["config"], go_backwards=not fwd["config"]["go_backwards"])
    inner_cfg = dict(fwd["config"], name=name.replace("bidirectional", fwd["class_name"].lower()))
    cfg = {"name": name, "trainable": True, "dtype": "float32",
           "layer": {"class_name": fwd["class_name"], "config": inner_cfg}, "merge_mode": merge_mode}
    ws = [(f"{name}/{n}", a) for n, a in fwd["weights"]] + [(f"{name}/{n}", a) for n, a in bwd["weights"]]
    return {"class_name": "Bidirectional", "config": cfg, "weights": ws, "inner": (fwd, bwd)}


def simple(class_name: str, name: str, **cfg) -> dict:
    """A weightless layer (Dropout, Activation, SpatialDropout1D, Lambda ...)."""
    return {"class_name": class_name, "config": {"name": name, "trainable": True, "dtype": "float32", **cfg},
            "weights": []}


def _names(name: str, cell: str | None, arrays: list, roles=("kernel", "recurrent_kernel", "bias")) -> list:
    prefix = f"{name}/{cell}" if cell else name
    return [(f"{prefix}/{role}:0", a) for role, a in zip(roles, arrays)]


# ---------------------------------------------------------------------------------- files


def model_config(layers: list[dict], input_size: int, functional: bool = False, name: str = "model") -> dict:
    """The JSON ``model.to_json()`` gave in Keras 2 (TF 2.x) for a Sequential or linear Functional model."""
    entries = [{"class_name": l["class_name"], "config": l["config"]} for l in layers]
    ids = bool(layers) and layers[0]["class_name"] == "Embedding"
    inp = {"class_name": "InputLayer", "config": {"batch_input_shape": [None, None] if ids else [None, None, input_size],
                                                  "dtype": "int32" if ids else "float32", "sparse": False,
                                                  "ragged": False, "name": "input_1"}}
    if not functional:
        return {"class_name": "Sequential", "config": {"name": name, "layers": [inp] + entries}}
    prev, out = "input_1", [dict(inp, name="input_1", inbound_nodes=[])]
    for e in entries:
        out.append(dict(e, name=e["config"]["name"], inbound_nodes=[[[prev, 0, 0, {}]]]))
        prev = e["config"]["name"]
    return {"class_name": "Functional", "config": {"name": name, "layers": out,
                                                   "input_layers": [["input_1", 0, 0]],
                                                   "output_layers": [[prev, 0, 0]]}}


def write_h5(path, layers: list[dict], input_size: int, *, keras_version: str = "2.11.0",
             functional: bool = False, weights_only: bool = False, config: dict | None = None) -> None:
    """Write a Keras 2 full-model (or weights-only) HDF5 file."""
    with h5py.File(path, "w") as f:
        if weights_only:
            root = f
        else:
            cfg = config or model_config(layers, input_size, functional)
            f.attrs["keras_version"] = keras_version.encode()
            f.attrs["backend"] = b"tensorflow"
            f.attrs["model_config"] = json.dumps(cfg).encode()
            root = f.create_group("model_weights")
        names = ["input_1"] + [l["config"]["name"] for l in layers]
        root.attrs["layer_names"] = np.array([n.encode() for n in names])
        root.attrs["backend"] = b"tensorflow"
        root.attrs["keras_version"] = keras_version.encode()
        root.create_group("input_1").attrs["weight_names"] = np.array([], dtype="S1")
        for l in layers:
            g = root.create_group(l["config"]["name"])
            g.attrs["weight_names"] = np.array([n.encode() for n, _ in l["weights"]], dtype="S")
            for n, a in l["weights"]:
                g.create_dataset(n, data=a)


# ---------------------------------------------------------------------------------- Keras 2 math


def _act(name: str, x: np.ndarray) -> np.ndarray:
    if name == "tanh":
        return np.tanh(x)
    if name == "sigmoid":
        return 1.0 / (1.0 + np.exp(-x))
    if name == "hard_sigmoid":  # Keras 2 backend.hard_sigmoid
        return np.clip(0.2 * x + 0.5, 0.0, 1.0)
    if name == "relu":
        return np.maximum(x, 0.0)
    if name == "linear":
        return x
    if name == "softmax":
        e = np.exp(x - x.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)
    if name == "elu":
        return np.where(x > 0, x, np.expm1(np.minimum(x, 0)))
    raise ValueError(name)


def _rnn(spec: dict, X: np.ndarray) -> np.ndarray:
    """Keras 2 recurrent layer over X (T, I): outputs in processing order, as Keras returns them."""
    cls, cfg = spec["class_name"], spec["config"]
    ws = [np.asarray(a, dtype=np.float64) for _, a in spec["weights"]]
    kernel, rec = ws[0], ws[1]
    H = rec.shape[0]
    act = cfg.get("activation", "tanh")
    ract = cfg.get("recurrent_activation", "sigmoid")
    if cls in ("CuDNNLSTM", "CuDNNGRU"):
        act, ract = "tanh", "sigmoid"
    if cfg.get("go_backwards"):
        X = X[::-1]
    h, c = np.zeros(H), np.zeros(H)
    out = []
    for x in X:
        if cls in ("LSTM", "CuDNNLSTM"):
            b = ws[2] if len(ws) > 2 else np.zeros(4 * H)
            if cls == "CuDNNLSTM":
                b = b[:4 * H] + b[4 * H:]
            z = x @ kernel + h @ rec + b
            i, f, g, o = (z[k * H:(k + 1) * H] for k in range(4))
            i, f, o = _act(ract, i), _act(ract, f), _act(ract, o)
            c = f * c + i * _act(act, g)
            h = o * _act(act, c)
        elif cls in ("GRU", "CuDNNGRU"):
            reset_after = cls == "CuDNNGRU" or cfg.get("reset_after", False)
            if len(ws) > 2:
                b = ws[2]
                if cls == "CuDNNGRU":
                    b = np.stack([b[:3 * H], b[3 * H:]])
            else:
                b = np.zeros((2, 3 * H)) if reset_after else np.zeros(3 * H)
            in_b, rec_b = (b[0], b[1]) if reset_after else (b, np.zeros(3 * H))
            mx = x @ kernel + in_b
            xz, xr, xh = mx[:H], mx[H:2 * H], mx[2 * H:]
            if reset_after:
                mi = h @ rec + rec_b
                z = _act(ract, xz + mi[:H])
                r = _act(ract, xr + mi[H:2 * H])
                hh = _act(act, xh + r * mi[2 * H:])
            else:
                z = _act(ract, xz + h @ rec[:, :H])
                r = _act(ract, xr + h @ rec[:, H:2 * H])
                hh = _act(act, xh + (r * h) @ rec[:, 2 * H:])
            h = z * h + (1.0 - z) * hh
        elif cls == "SimpleRNN":
            b = ws[2] if len(ws) > 2 else np.zeros(H)
            h = _act(act, x @ kernel + b + h @ rec)
        else:
            raise ValueError(cls)
        out.append(h.copy())
    return np.array(out)


def forward(layers: list[dict], X: np.ndarray) -> np.ndarray:
    """Keras 2 model output for one sequence X (T, I), or (T,) token ids when the first layer is an
    Embedding; a return_sequences=False layer keeps its
    per-step outputs so that callers compare the last row."""
    X = np.asarray(X, dtype=np.float64)
    for spec in layers:
        cls = spec["class_name"]
        if cls == "Embedding":
            X = np.asarray(spec["weights"][0][1], dtype=np.float64)[X.astype(np.int64)]
        elif cls == "Conv1D":  # y[t] = sum_j kernel[j] . x[t + j * d - left], zeros outside
            cfg = spec["config"]
            kernel, b = (np.asarray(a, dtype=np.float64) for _, a in spec["weights"])
            k, d = kernel.shape[0], cfg["dilation_rate"][0]
            span = (k - 1) * d
            left = span if cfg["padding"] == "causal" else span // 2
            P = np.concatenate([np.zeros((left, X.shape[1])), X, np.zeros((span - left, X.shape[1]))])
            X = _act(cfg["activation"], sum(P[j * d:j * d + len(X)] @ kernel[j] for j in range(k)) + b)
        elif cls == "BatchNormalization":
            g, beta, mean, var = (np.asarray(a, dtype=np.float64) for _, a in spec["weights"])
            X = (X - mean) / np.sqrt(var + spec["config"]["epsilon"]) * g + beta
        elif cls in ("LSTM", "GRU", "SimpleRNN", "CuDNNLSTM", "CuDNNGRU"):
            X = _rnn(spec, X)
        elif cls == "Bidirectional":
            fwd, bwd = spec["inner"]
            yf, yb = _rnn(fwd, X), _rnn(bwd, X)[::-1]
            mode = spec["config"]["merge_mode"]
            X = {"concat": lambda: np.concatenate([yf, yb], axis=1), "sum": lambda: yf + yb,
                 "mul": lambda: yf * yb, "ave": lambda: (yf + yb) / 2}[mode]()
        elif cls in ("Dense", "TimeDistributed"):
            d = spec.get("inner", spec)
            ws = [np.asarray(a, dtype=np.float64) for _, a in d["weights"]]
            X = _act(d["config"]["activation"], X @ ws[0] + (ws[1] if len(ws) > 1 else 0.0))
        elif cls == "Activation":
            X = _act(spec["config"]["activation"], X)
        elif cls in ("Dropout", "SpatialDropout1D", "InputLayer"):
            pass
        else:
            raise ValueError(cls)
    return X
