"""One Keras layer (its config dict and weights) -> IR layers, in ONNX conventions.

LSTM gates i,f,c,o -> i,o,f,c with kernels transposed; GRU gates z,r,h with ``reset_after`` ->
``linear_before_reset`` (a (2, 3H) bias holds the input and the recurrent bias); CuDNNLSTM and
CuDNNGRU doubled biases -> Wb/Rb; Dense kernel (I, O) -> W (O, I). ``hard_sigmoid`` follows the
Keras version that wrote the file: Keras 2 clip(0.2x + 0.5, 0, 1), Keras 3 relu6(x + 3) / 6.
Only the JSON config is read: Lambda layers and custom classes or functions are refused by name.
Weights-only files get their layer types inferred from weight shapes (``guess_layer``).
Front ends (``front_end``): Embedding, Conv1D over time (kernel (k, C_in / groups, C_out) ->
W (C_out, C_in / groups, k); causal or same padding), BatchNormalization (folded later by
``..frontend``) and LayerNormalization.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from streamlstm.errors import ConversionError
import warnings

from streamlstm.network import GRU, LSTM, RNN, Activation, Dense, Embedding, LayerNorm, TimeConv1d, act

from ..frontend import BatchNorm
from .files import WeightList

NOOP_LAYERS = {"InputLayer", "Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D",
               "GaussianNoise", "GaussianDropout", "AlphaDropout", "ActivityRegularization"}
RECURRENT_LAYERS = {"LSTM", "GRU", "SimpleRNN", "CuDNNLSTM", "CuDNNGRU", "RNN"}
PER_FRAME_LAYERS = {"Dense", "Activation", "ReLU", "LeakyReLU", "ELU", "Softmax", "ThresholdedReLU"}
WRAPPERS = {"Bidirectional", "TimeDistributed"}
MODEL_CLASSES = {"Sequential", "Functional", "Model"}
_CELLS = {"LSTMCell": "LSTM", "GRUCell": "GRU", "SimpleRNNCell": "SimpleRNN"}
# Front-end layers: Embedding (first only), Conv1D over time, the normalisations.
FRONT_LAYERS = {"Embedding", "Conv1D", "Convolution1D", "BatchNormalization", "LayerNormalization"}
KNOWN_LAYERS = NOOP_LAYERS | RECURRENT_LAYERS | PER_FRAME_LAYERS | WRAPPERS | FRONT_LAYERS

# Keras activation name -> (IR name, alpha, beta); hard_sigmoid depends on the Keras version.
_ACTS: dict[str, tuple[str, float | None, float | None]] = {
    "linear": ("Identity", None, None),
    "relu": ("Relu", None, None),
    "tanh": ("Tanh", None, None),
    "sigmoid": ("Sigmoid", None, None),
    "softmax": ("Softmax", None, None),
    "elu": ("Elu", 1.0, None),
    "softsign": ("Softsign", None, None),
    "softplus": ("Softplus", None, None),
    "leaky_relu": ("LeakyRelu", 0.2, None),
}
_HARD_SIGMOID = {2: ("HardSigmoid", 0.2, 0.5), 3: ("HardSigmoid", 1.0 / 6.0, 0.5)}


@dataclass
class Ctx:
    """What every layer conversion needs: where we are and which Keras wrote the file."""

    source: str
    major: int | None          # Keras major version of the writer (None: unknown)
    version: str | None

    def err(self, layer: str, cls: str, msg: str) -> ConversionError:
        return ConversionError(f"{self.source}: layer {layer!r} ({cls}): {msg}")


def layer_info(d: Any, ctx: Ctx, where: str = "") -> tuple[str, dict, str]:
    """(class_name, config, name) of a layer dict, refusing custom objects and Lambda."""
    if not isinstance(d, dict) or not isinstance(d.get("class_name"), str):
        raise ConversionError(f"{ctx.source}: malformed layer entry{where}: {str(d)[:80]}")
    cls = d["class_name"]
    cfg = d.get("config")
    if not isinstance(cfg, dict):
        cfg = {}
    name = str(cfg.get("name") or d.get("name") or cls)
    if cls == "Lambda":
        raise ctx.err(name, cls, "Lambda layers hold Python code and are never deserialised")
    module = d.get("module")
    registered = d.get("registered_name")
    custom = (registered not in (None, cls)) or (module is not None and not _builtin_module(module))
    if custom:
        raise ctx.err(name, cls, f"custom object (module={module!r}, registered_name={registered!r}) is never "
                                 f"deserialised")
    return cls, cfg, name


def _builtin_module(module: Any) -> bool:
    if not isinstance(module, str):
        return False
    return any(module == m or module.startswith(m + ".") for m in ("keras", "tf_keras", "tensorflow"))


def unwrap_rnn(cls: str, cfg: dict, name: str, ctx: Ctx) -> tuple[str, dict]:
    """The cell kind and a flat config (RNN(cell=XCell) is merged into its cell's config)."""
    if cfg.get("return_state"):
        raise ctx.err(name, cls, "return_state=True is not supported (the state outputs cannot be streamed)")
    if cls != "RNN":
        return cls, cfg
    ccls, ccfg, _ = layer_info(cfg.get("cell"), ctx, f" (cell of {name!r})")
    if ccls not in _CELLS:
        raise ctx.err(name, cls, f"RNN with cell {ccls} is not supported (LSTMCell, GRUCell, SimpleRNNCell)")
    merged = dict(ccfg)
    for k in ("return_sequences", "go_backwards", "stateful", "return_state", "time_major"):
        if k in cfg:
            merged[k] = cfg[k]
    return _CELLS[ccls], merged


def _activation(spec: Any, ctx: Ctx, name: str, cls: str, recurrent: bool):
    if isinstance(spec, dict):
        mod = spec.get("module")
        if spec.get("class_name") == "function" and _builtin_module(mod) and isinstance(spec.get("config"), str):
            spec = spec["config"]
        else:
            raise ctx.err(name, cls, f"custom activation {spec.get('config', spec)!r} is never deserialised")
    if spec is None:
        spec = "linear"
    if not isinstance(spec, str):
        raise ctx.err(name, cls, f"activation {spec!r} not understood")
    if spec == "hard_sigmoid":
        if ctx.major is None:
            raise ctx.err(name, cls, "hard_sigmoid differs between Keras 2 and 3 and the file does not say which "
                                     "Keras wrote it; add \"keras_version\" to the config")
        ir, a, b = _HARD_SIGMOID[ctx.major]
    elif spec in _ACTS:
        ir, a, b = _ACTS[spec]
    else:
        raise ctx.err(name, cls, f"activation {spec!r} is not supported (supported: "
                                 f"{', '.join(sorted(_ACTS) + ['hard_sigmoid'])})")
    if recurrent:
        if ir == "Identity":
            ir, a, b = "Affine", 1.0, 0.0
        if ir == "Softmax":
            raise ctx.err(name, cls, "softmax is not an RNN activation")
    return act(ir, a, b)


def per_frame(cls: str, cfg: dict, name: str, w: WeightList, ctx: Ctx) -> list:
    if cls == "Dense":
        return [_dense(cfg, name, w, ctx)]
    if w:
        raise ctx.err(name, cls, f"unexpected weights ({len(w)} arrays)")
    if cls == "Activation":
        a = _activation(cfg.get("activation"), ctx, name, cls, recurrent=False)
    elif cls == "ReLU":
        if cfg.get("max_value") is not None or float(cfg.get("threshold") or 0.0) != 0.0:
            raise ctx.err(name, cls, "ReLU with max_value or threshold is not supported")
        slope = float(cfg.get("negative_slope") or 0.0)
        a = act("LeakyRelu", slope) if slope else act("Relu")
    elif cls == "LeakyReLU":
        slope = cfg.get("negative_slope", cfg.get("alpha", 0.3))
        a = act("LeakyRelu", float(slope))
    elif cls == "ELU":
        a = act("Elu", float(cfg.get("alpha", 1.0)))
    elif cls == "ThresholdedReLU":
        a = act("ThresholdedRelu", float(cfg.get("theta", 1.0)))
    elif cls == "Softmax":
        axis = cfg.get("axis", -1)
        if axis not in (-1, 2, [-1], [2]):
            raise ctx.err(name, cls, f"softmax over axis {axis} is not over the features")
        a = act("Softmax")
    else:  # pragma: no cover - guarded by the callers
        raise ctx.err(name, cls, "not a per-frame layer")
    return [] if a.name == "Identity" else [Activation(a, name=name)]


def _check_dtype_policy(cfg: dict, name: str, cls: str, ctx: Ctx) -> None:
    pol = cfg.get("dtype")
    pname = ""
    if isinstance(pol, dict):
        pname = str(pol.get("class_name", "")) + " " + str((pol.get("config") or {}).get("name", ""))
    elif isinstance(pol, str):
        pname = pol
    if any(q in pname.lower() for q in ("quantized", "int8", "int4", "float8", "gptq")):
        raise ctx.err(name, cls, f"quantized layer (dtype policy {pname.strip()!r}) is not supported")
    if cfg.get("lora_rank"):
        raise ctx.err(name, cls, "LoRA-enabled layer is not supported (merge the LoRA weights first)")


def _dense(cfg: dict, name: str, w: WeightList, ctx: Ctx) -> Dense:
    cls = "Dense"
    _check_dtype_policy(cfg, name, cls, ctx)
    use_bias = bool(cfg.get("use_bias", True))
    arrays = _expect(w, 1 + use_bias, name, cls, ctx)
    kernel = arrays[0]
    units = cfg.get("units")
    if kernel.ndim != 2 or (units is not None and kernel.shape[1] != int(units)):
        raise ctx.err(name, cls, f"kernel shape {kernel.shape}, expected (input, {units})")
    b = None
    if use_bias:
        b = arrays[1]
        if b.shape != (kernel.shape[1],):
            raise ctx.err(name, cls, f"bias shape {b.shape}, expected ({kernel.shape[1]},)")
    return Dense(kernel.T, b, _activation(cfg.get("activation"), ctx, name, cls, recurrent=False), name=name)


def _expect(w: WeightList, n: int, name: str, cls: str, ctx: Ctx) -> list[np.ndarray]:
    if len(w) != n:
        names = [k for k, _ in w]
        raise ctx.err(name, cls, f"expected {n} weight arrays, found {len(w)} {names}")
    return [a for _, a in w]


# LSTM gate blocks: Keras i,f,c,o -> ONNX i,o,f,c.
_LSTM_ORDER = (0, 3, 1, 2)


def _gates(a: np.ndarray, H: int, order: tuple[int, ...] | None) -> np.ndarray:
    """Reorder gate blocks along axis 0 (blocks of H rows)."""
    if order is None:
        return a
    return np.concatenate([a[g * H:(g + 1) * H] for g in order], axis=0)


@dataclass
class _Dir:
    """One direction of a recurrent layer, already in ONNX layout."""

    kind: str
    W: np.ndarray
    R: np.ndarray
    Wb: np.ndarray | None
    Rb: np.ndarray | None
    acts: list
    lbr: bool = False


def _n_weights(kind: str, cfg: dict) -> int:
    if kind in ("CuDNNLSTM", "CuDNNGRU"):
        return 3
    return 2 + bool(cfg.get("use_bias", True))


def _direction(kind: str, cfg: dict, name: str, w: WeightList, ctx: Ctx) -> _Dir:
    cls = kind
    _check_dtype_policy(cfg, name, cls, ctx)
    arrays = _expect(w, _n_weights(kind, cfg), name, cls, ctx)
    kernel, rec = arrays[0], arrays[1]
    bias = arrays[2] if len(arrays) > 2 else None
    gates = {"LSTM": 4, "CuDNNLSTM": 4, "GRU": 3, "CuDNNGRU": 3, "SimpleRNN": 1}[kind]
    H = int(cfg.get("units") or rec.shape[0])
    if kernel.ndim != 2 or kernel.shape[1] != gates * H:
        raise ctx.err(name, cls, f"kernel shape {kernel.shape}, expected (input, {gates * H})")
    if rec.shape != (H, gates * H):
        raise ctx.err(name, cls, f"recurrent_kernel shape {rec.shape}, expected ({H}, {gates * H})")
    G = gates * H
    order = _LSTM_ORDER if gates == 4 else None
    W, R = _gates(kernel.T, H, order), _gates(rec.T, H, order)
    Wb = Rb = None
    if kind in ("CuDNNLSTM", "CuDNNGRU"):
        if bias.shape != (2 * G,):
            raise ctx.err(name, cls, f"bias shape {bias.shape}, expected ({2 * G},) (input and recurrent biases)")
        Wb, Rb = _gates(bias[:G], H, order), _gates(bias[G:], H, order)
        acts = [act("Sigmoid"), act("Tanh")] + ([act("Tanh")] if gates == 4 else [])
        return _Dir("LSTM" if gates == 4 else "GRU", W, R, Wb, Rb, acts, lbr=(gates == 3))
    f = _activation(cfg.get("activation", "tanh"), ctx, name, cls, recurrent=True)
    if kind == "SimpleRNN":
        if bias is not None and bias.shape != (H,):
            raise ctx.err(name, cls, f"bias shape {bias.shape}, expected ({H},)")
        return _Dir("RNN", W, R, bias, None, [f])
    rf = _activation(cfg.get("recurrent_activation", "sigmoid"), ctx, name, cls, recurrent=True)
    if kind == "LSTM":
        if bias is not None:
            if bias.shape != (G,):
                raise ctx.err(name, cls, f"bias shape {bias.shape}, expected ({G},)")
            Wb = _gates(bias, H, order)
        return _Dir("LSTM", W, R, Wb, None, [rf, f, f])
    # GRU
    reset_after = cfg.get("reset_after")
    if reset_after is None:
        reset_after = bias is not None and bias.ndim == 2
    reset_after = bool(reset_after)
    if bias is not None:
        if reset_after:
            if bias.shape != (2, G):
                raise ctx.err(name, cls, f"bias shape {bias.shape}, expected (2, {G}) for reset_after=True")
            Wb, Rb = bias[0], bias[1]
        else:
            if bias.shape != (G,):
                raise ctx.err(name, cls, f"bias shape {bias.shape}, expected ({G},) for reset_after=False")
            Wb = bias
    return _Dir("GRU", W, R, Wb, Rb, [rf, f], lbr=reset_after)


def _build(dirs: list[_Dir], name: str, direction: str, merge: str = "concat"):
    G = dirs[0].W.shape[0]

    def stack(attr: str):
        vals = [getattr(d, attr) for d in dirs]
        if all(v is None for v in vals):
            return None
        return np.stack([np.zeros(G) if v is None else v for v in vals])

    W, R = np.stack([d.W for d in dirs]), np.stack([d.R for d in dirs])
    acts = [a for d in dirs for a in d.acts]
    kw = dict(Wb=stack("Wb"), Rb=stack("Rb"), activations=acts, direction=direction, merge=merge, name=name)
    kind = dirs[0].kind
    if kind == "LSTM":
        return LSTM(W, R, **kw)
    if kind == "GRU":
        return GRU(W, R, linear_before_reset=dirs[0].lbr, **kw)
    return RNN(W, R, **kw)


def recurrent(kind: str, cfg: dict, name: str, w: WeightList, ctx: Ctx, direction: str):
    """A one-direction LSTM/GRU/RNN layer; ``direction`` is "forward" or "reverse"."""
    return _build([_direction(kind, cfg, name, w, ctx)], name, direction)


def bidirectional(cfg: dict, name: str, w: WeightList, ctx: Ctx):
    cls = "Bidirectional"
    merge = cfg.get("merge_mode", "concat")
    if merge not in ("concat", "sum", "mul", "ave"):
        raise ctx.err(name, cls, f"merge_mode={merge!r} is not supported (concat, sum, mul, ave)")
    fcls, fcfg, _ = layer_info(cfg.get("layer"), ctx, f" inside {name!r}")
    if fcls not in RECURRENT_LAYERS:
        raise ctx.err(name, cls, f"wraps {fcls}, not a recurrent layer")
    fkind, fcfg = unwrap_rnn(fcls, fcfg, name, ctx)
    if cfg.get("backward_layer") is not None:
        bcls, bcfg, _ = layer_info(cfg["backward_layer"], ctx, f" inside {name!r}")
        if bcls not in RECURRENT_LAYERS:
            raise ctx.err(name, cls, f"backward layer is {bcls}, not a recurrent layer")
        bkind, bcfg = unwrap_rnn(bcls, bcfg, name, ctx)
    else:
        bkind, bcfg = fkind, dict(fcfg, go_backwards=not fcfg.get("go_backwards", False))
    if fcfg.get("go_backwards", False) or not bcfg.get("go_backwards", False):
        raise ctx.err(name, cls, "the forward layer must have go_backwards=False and the backward layer "
                                 "go_backwards=True")
    seqs = bool(fcfg.get("return_sequences", False))
    if not seqs:
        raise ctx.err(name, cls, "return_sequences=False merges the forward layer's last step with the backward "
                                 "layer's first-frame output; no single frame of a bidirectional layer equals it")
    nf = _n_weights(fkind, fcfg)
    fwd = _direction(fkind, fcfg, name, w[:nf], ctx)
    bwd = _direction(bkind, bcfg, name, w[nf:], ctx)
    if fwd.kind != bwd.kind or fwd.W.shape != bwd.W.shape or fwd.lbr != bwd.lbr:
        raise ctx.err(name, cls, f"forward ({fkind}) and backward ({bkind}) layers differ in kind, size or "
                                 f"reset_after")
    return _build([fwd, bwd], name, "bidirectional", merge), seqs


# ---------------------------------------------------------------------------------- weights only
def guess_layer(name: str, w: WeightList, ctx: Ctx) -> dict:
    """A layer config inferred from weights alone (Keras's default attributes)."""
    if not w:
        raise ConversionError(f"{ctx.source}: layer {name!r}: no weights found in the file; weights-only "
                              f"files need the names of layers that have weights (or config=...)")
    groups: dict[str, list[np.ndarray]] = {}
    for wname, a in w:
        key = wname.rsplit("/vars/", 1)[0] if "/vars/" in wname else wname.rsplit("/", 1)[0]
        groups.setdefault(key, []).append(a)
    units = [_guess_unit(name, arrays, ctx) for arrays in groups.values()]
    if len(units) == 1:
        cls, cfg = units[0]
        return {"class_name": cls, "config": dict(cfg, name=name)}
    if len(units) == 2 and units[0][0] == units[1][0] and units[0][0] in RECURRENT_LAYERS:
        cls, cfg = units[0]
        return {"class_name": "Bidirectional",
                "config": {"name": name, "merge_mode": "concat", "layer": {"class_name": cls, "config": cfg}}}
    raise ConversionError(f"{ctx.source}: layer {name!r}: cannot infer the layer type from its weights "
                          f"{[k for k, _ in w]}; pass config=...")


def _guess_unit(name: str, arrays: list[np.ndarray], ctx: Ctx) -> tuple[str, dict]:
    k = arrays[0]
    bad = ConversionError(f"{ctx.source}: layer {name!r}: cannot infer the layer type from weight shapes "
                          f"{[a.shape for a in arrays]}; pass config=...")
    if k.ndim != 2:
        raise bad
    if len(arrays) == 1 or (len(arrays) == 2 and arrays[1].ndim == 1 and arrays[1].shape[0] == k.shape[1]):
        return "Dense", {"units": k.shape[1], "use_bias": len(arrays) == 2, "activation": "linear"}
    r = arrays[1]
    if r.ndim != 2 or r.shape[1] != k.shape[1] or len(arrays) > 3 or k.shape[1] % r.shape[0]:
        raise bad
    H = r.shape[0]
    ratio = k.shape[1] // H
    b = arrays[2] if len(arrays) == 3 else None
    base = {"units": H, "use_bias": b is not None, "return_sequences": True, "activation": "tanh"}
    if ratio == 1:
        return "SimpleRNN", base
    base["recurrent_activation"] = "sigmoid"
    if ratio == 4:
        if b is not None and b.shape == (8 * H,):
            return "CuDNNLSTM", base
        return "LSTM", base
    if ratio == 3:
        if b is not None and b.shape == (6 * H,):
            return "CuDNNGRU", base
        return "GRU", dict(base, reset_after=b is not None and b.ndim == 2)
    raise bad


# ---------------------------------------------------------------------------------- front end
def _last_axis(cfg: dict, name: str, cls: str, ctx: Ctx) -> None:
    axis = cfg.get("axis", -1)
    if axis not in (-1, 2, [-1], [2]):
        raise ctx.err(name, cls, f"axis={axis}: only the feature (last) axis of a (batch, time, features) "
                                 f"sequence is supported")


def front_end(cls: str, cfg: dict, name: str, w: WeightList, ctx: Ctx) -> list:
    """Embedding, Conv1D (over time), BatchNormalization (folded later) or LayerNormalization."""
    _check_dtype_policy(cfg, name, cls, ctx)
    if cls == "Embedding":
        (table,) = _expect(w, 1, name, cls, ctx)
        if table.ndim != 2 or (cfg.get("input_dim") not in (None, table.shape[0])
                               or cfg.get("output_dim") not in (None, table.shape[1])):
            raise ctx.err(name, cls, f"embeddings shape {table.shape}, expected ({cfg.get('input_dim')}, "
                                     f"{cfg.get('output_dim')})")
        if cfg.get("mask_zero"):
            warnings.warn(f"{ctx.source}: layer {name!r} (Embedding): mask_zero=True: Keras skips id-0 frames "
                          f"(padding); a stream computes every frame it is given, so feed only the real "
                          f"tokens", UserWarning, stacklevel=4)
        return [Embedding(table, name=name)]
    if cls in ("Conv1D", "Convolution1D"):
        return [_conv1d(cfg, name, w, ctx, cls)]
    if cls == "BatchNormalization":
        _last_axis(cfg, name, cls, ctx)
        scale, center = bool(cfg.get("scale", True)), bool(cfg.get("center", True))
        arrays = _expect(w, scale + center + 2, name, cls, ctx)
        gamma = arrays.pop(0) if scale else None
        beta = arrays.pop(0) if center else None
        return [BatchNorm.from_stats(arrays[0], arrays[1], gamma, beta, float(cfg.get("epsilon", 1e-3)), name,
                                     f"{ctx.source}: layer {name!r} ({cls})")]
    # LayerNormalization
    _last_axis(cfg, name, cls, ctx)
    if cfg.get("rms_scaling"):
        raise ctx.err(name, cls, "rms_scaling=True is not supported")
    scale, center = bool(cfg.get("scale", True)), bool(cfg.get("center", True))
    if not scale:
        raise ctx.err(name, cls, "scale=False leaves the width unknown from the weights; not supported")
    arrays = _expect(w, scale + center, name, cls, ctx)
    return [LayerNorm(arrays[0], arrays[1] if center else None, float(cfg.get("epsilon", 1e-3)), name=name)]


def _one_int(v: Any, what: str, name: str, cls: str, ctx: Ctx) -> int:
    v = v if isinstance(v, list) else [v]
    if len(v) != 1 or not isinstance(v[0], int) or isinstance(v[0], bool):
        raise ctx.err(name, cls, f"{what}={v!r}: expected one integer")
    return v[0]


def _conv1d(cfg: dict, name: str, w: WeightList, ctx: Ctx, cls: str) -> TimeConv1d:
    """Conv1D over time: kernel (k, C_in / groups, C_out) -> W (C_out, C_in / groups, k).
    padding "causal": (span, 0), streams; "same": (span // 2, span - span // 2), Model.run only."""
    if cfg.get("data_format", "channels_last") != "channels_last":
        raise ctx.err(name, cls, f"data_format={cfg.get('data_format')!r}: only channels_last (time, features) "
                                 f"convolves over time")
    strides = _one_int(cfg.get("strides", cfg.get("subsample_length", 1)), "strides", name, cls, ctx)
    dilation = _one_int(cfg.get("dilation_rate", 1), "dilation_rate", name, cls, ctx)
    groups = int(cfg.get("groups", 1) or 1)
    if strides != 1:
        raise ctx.err(name, cls, f"strides={strides} gives fewer frames than it reads; only stride 1 streams")
    use_bias = bool(cfg.get("use_bias", True))
    arrays = _expect(w, 1 + use_bias, name, cls, ctx)
    kernel = arrays[0]
    if kernel.ndim != 3 or cfg.get("filters") not in (None, kernel.shape[2]):
        raise ctx.err(name, cls, f"kernel shape {kernel.shape}, expected (kernel_size, input / groups, "
                                 f"{cfg.get('filters')})")
    k = kernel.shape[0]
    span = (k - 1) * dilation
    pad = str(cfg.get("padding", cfg.get("border_mode", "valid"))).lower()
    if pad == "causal":
        padding = (span, 0)
    elif pad == "same":
        padding = (span // 2, span - span // 2)
    elif pad == "valid" and span == 0:
        padding = (0, 0)
    else:
        raise ctx.err(name, cls, f"padding={pad!r} with kernel {k} gives fewer frames than it reads; use "
                                 f"padding='causal' (streams) or 'same' (Model.run only)")
    b = arrays[1] if use_bias else None
    if b is not None and b.shape != (kernel.shape[2],):
        raise ctx.err(name, cls, f"bias shape {b.shape}, expected ({kernel.shape[2]},)")
    a = _activation(cfg.get("activation"), ctx, name, cls, recurrent=False)
    if a.name == "Softmax":
        raise ctx.err(name, cls, "activation softmax on a convolution is not supported")
    return TimeConv1d(kernel.transpose(2, 1, 0), b, dilation=dilation, padding=padding, groups=groups,
                      activation=a, name=name)
