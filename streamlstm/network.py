"""The framework-neutral IR: a Network is an ordered list of layers.

Every converter produces a Network in ONNX's conventions; the planner and the kernels consume
it. Conventions (per direction d, D = 1 or 2 directions):

- LSTM: gates stacked i, o, f, c. ``W`` (D, 4H, I), ``R`` (D, 4H, Hr), ``Wb``/``Rb`` (D, 4H),
  peepholes ``P`` (D, 3H) ordered i, o, f. ``proj`` (D, Hr, H) is PyTorch's projection
  (h = proj @ (o * h(c))); without it Hr = H. Activations f, g, h per direction.
- GRU: gates stacked z, r, h. ``W`` (D, 3H, I), ``R`` (D, 3H, H), ``Wb``/``Rb`` (D, 3H),
  ``linear_before_reset`` as in ONNX. Activations f, g per direction.
- RNN: ``W`` (D, H, I), ``R`` (D, H, H), ``Wb``/``Rb`` (D, H). Activation f per direction.
- Dense: y = activation(W @ x + b), ``W`` (O, I).
- Activation: an elementwise activation or Softmax.

Bidirectional layers concatenate [forward, backward] outputs (``merge="concat"``) or combine
them with ``sum``/``mul``/``ave``. ``initial_h``/``initial_c`` are learned initial states:
a session starts from them and returns to them on reset.

Arrays are stored as float64; the Plan casts them to the model's dtype.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Sequence, Union

import numpy as np

from .errors import NetworkError
from .safezip import check_member

# ONNX RNN activations with their default (alpha, beta); nan means "unused".
_NAN = float("nan")
RNN_ACTIVATIONS: dict[str, tuple[float, float]] = {
    "Relu": (_NAN, _NAN),
    "Tanh": (_NAN, _NAN),
    "Sigmoid": (_NAN, _NAN),
    "Affine": (1.0, 0.0),
    "LeakyRelu": (0.01, _NAN),
    "ThresholdedRelu": (1.0, _NAN),
    "ScaledTanh": (1.0, 1.0),
    "HardSigmoid": (0.2, 0.5),
    "Elu": (1.0, _NAN),
    "Softsign": (_NAN, _NAN),
    "Softplus": (_NAN, _NAN),
}
# Activations allowed on Dense and Activation layers.
LAYER_ACTIVATIONS: dict[str, tuple[float, float]] = {
    **RNN_ACTIVATIONS,
    "Identity": (_NAN, _NAN),
    "Softmax": (_NAN, _NAN),
}
DIRECTIONS = ("forward", "reverse", "bidirectional")
MERGE_MODES = ("concat", "sum", "mul", "ave")


@dataclass(frozen=True)
class Act:
    """An activation by ONNX name, with its alpha/beta (nan where the function has none)."""

    name: str
    alpha: float = _NAN
    beta: float = _NAN

    def to_json(self) -> list:
        return [self.name, _json_float(self.alpha), _json_float(self.beta)]

    @staticmethod
    def from_json(v: list) -> "Act":
        if not isinstance(v, list) or len(v) != 3:
            raise NetworkError(f"activation: expected [name, alpha, beta], got {v!r}")
        return Act(str(v[0]), _from_json_float(v[1]), _from_json_float(v[2]))


def act(name: str, alpha: float | None = None, beta: float | None = None) -> Act:
    """Build an Act, filling ONNX's defaults for alpha/beta that are not given."""
    if not isinstance(name, str) or name not in LAYER_ACTIVATIONS:
        raise NetworkError(f"unknown activation {name!r}; known: {sorted(LAYER_ACTIVATIONS)}")
    da, db = LAYER_ACTIVATIONS[name]
    a = da if alpha is None else float(alpha)
    b = db if beta is None else float(beta)
    for label, v, default in (("alpha", a, da), ("beta", b, db)):
        if math.isinf(v) or (math.isnan(v) and not math.isnan(default)):
            raise NetworkError(f"activation {name}: {label} must be finite, got {v}")
    return Act(name, a, b)


ActLike = Union[Act, str]


def _as_act(a: ActLike) -> Act:
    if isinstance(a, Act):
        return act(a.name, None if math.isnan(a.alpha) else a.alpha, None if math.isnan(a.beta) else a.beta)
    return act(a)


def _json_float(x: float):
    return None if x is None or math.isnan(x) else float(x)


def _from_json_float(x) -> float:
    return _NAN if x is None else float(x)


def _f64(a, name: str = "array") -> np.ndarray | None:
    if a is None:
        return None
    try:
        return np.array(a, dtype=np.float64, copy=True)
    except (TypeError, ValueError) as e:
        raise NetworkError(f"{name}: not a numeric array ({e})") from None


_ARRAY_FIELDS = {
    "LSTM": ("W", "R", "Wb", "Rb", "P", "proj", "initial_h", "initial_c"),
    "GRU": ("W", "R", "Wb", "Rb", "initial_h"),
    "RNN": ("W", "R", "Wb", "Rb", "initial_h"),
    "Dense": ("W", "b"),
    "Activation": (),
}


def _read_npz(path: str | Path) -> dict[str, np.ndarray]:
    """The arrays of an .npz, refusing object arrays, zip bombs and arrays larger than declared."""
    import zipfile

    arrays = {}
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            if not info.filename.endswith(".npy"):
                raise NetworkError(f"{path}: unexpected member {info.filename!r}")
            check_member(info, str(path), NetworkError)
            with zf.open(info) as fh:
                fmt = np.lib.format
                version = fmt.read_magic(fh)
                header = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
                shape, _, dtype = header(fh)
                if dtype.hasobject:
                    raise NetworkError(f"{path}: member {info.filename!r} holds Python objects")
                nbytes = int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
                if nbytes > info.file_size:
                    raise NetworkError(f"{path}: member {info.filename!r} declares shape {shape} "
                                       f"({nbytes} bytes) in {info.file_size} bytes")
            with zf.open(info) as fh:
                arrays[info.filename[:-4]] = np.lib.format.read_array(fh, allow_pickle=False)
    return arrays


def _layer_from_config(path, i: int, cfg, arrays: dict) -> "Layer":
    """Layer ``i`` of a native file from its JSON config and arrays; NetworkError if malformed."""
    where = f"{path}: layer {i}"
    if not isinstance(cfg, dict):
        raise NetworkError(f"{where}: config is not an object")
    cfg = dict(cfg)
    kind = cfg.pop("kind", None)
    cls = LAYER_TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise NetworkError(f"{where}: unknown kind {kind!r}")
    try:
        kw = {}
        for k, v in cfg.items():
            if k == "activations":
                v = [Act.from_json(a) for a in v]
            elif k == "activation":
                v = Act.from_json(v)
            kw[k] = v
        for f in _ARRAY_FIELDS[kind]:
            if f in kw:
                raise NetworkError(f"{where} ({kind}): {f} must be an array, not a config value")
            key = f"layer{i}.{f}"
            if key in arrays:
                kw[f] = arrays[key]
        return cls(**kw)
    except NetworkError:
        raise
    except (TypeError, ValueError, KeyError, IndexError, AttributeError) as e:
        raise NetworkError(f"{where} ({kind}): malformed config: {e}") from None


class Layer:
    """Common behaviour of the IR layers."""

    kind: str = ""
    name: str

    @property
    def label(self) -> str:
        return f"{self.kind} {self.name!r}" if self.name else self.kind

    def _err(self, fieldname: str, msg: str) -> NetworkError:
        return NetworkError(f"{self.label}: {fieldname}: {msg}")

    def arrays(self) -> dict[str, np.ndarray]:
        out = {}
        for k in _ARRAY_FIELDS[self.kind]:
            v = getattr(self, k)
            if v is not None:
                out[k] = v
        return out


def _check_shape(layer: Layer, fname: str, a: np.ndarray | None, shape: tuple, required: bool = True):
    if a is None:
        if required:
            raise layer._err(fname, "missing")
        return
    if a.shape != shape:
        raise layer._err(fname, f"shape {a.shape}, expected {shape}")
    if not np.all(np.isfinite(a)):
        raise layer._err(fname, "contains NaN or Inf")


@dataclass(eq=False)
class _Recurrent(Layer):
    """Shared fields and checks of LSTM, GRU and RNN."""

    W: np.ndarray
    R: np.ndarray
    Wb: np.ndarray | None = None
    Rb: np.ndarray | None = None
    activations: Sequence[ActLike] | None = None
    clip: float | None = None
    direction: str = "forward"
    initial_h: np.ndarray | None = None
    merge: str = "concat"
    name: str = ""

    gates = 1
    n_acts = 1
    default_acts = ()

    def _init_common(self):
        self.W = _f64(self.W, f"{self.kind}.W")
        self.R = _f64(self.R, f"{self.kind}.R")
        self.Wb = _f64(self.Wb, f"{self.kind}.Wb")
        self.Rb = _f64(self.Rb, f"{self.kind}.Rb")
        self.initial_h = _f64(self.initial_h, f"{self.kind}.initial_h")
        if self.activations is None:
            self.activations = tuple(act(a) for a in self.default_acts) * self.num_directions
        else:
            self.activations = tuple(_as_act(a) for a in self.activations)
        if self.clip is not None:
            self.clip = float(self.clip)

    @property
    def num_directions(self) -> int:
        return 2 if self.direction == "bidirectional" else 1

    @property
    def hidden_size(self) -> int:
        return int(self.R.shape[-1]) if self.R is not None and self.R.ndim == 3 else 0

    @property
    def input_size(self) -> int:
        return int(self.W.shape[-1])

    @property
    def unit_output_size(self) -> int:
        """Output width of one direction."""
        return self.hidden_size

    @property
    def output_size(self) -> int:
        p = self.unit_output_size
        return p * 2 if self.direction == "bidirectional" and self.merge == "concat" else p

    def _validate_common(self):
        if self.direction not in DIRECTIONS:
            raise self._err("direction", f"{self.direction!r} is not one of {DIRECTIONS}")
        if self.merge not in MERGE_MODES:
            raise self._err("merge", f"{self.merge!r} is not one of {MERGE_MODES}")
        D = self.num_directions
        if self.W is None or self.W.ndim != 3 or self.W.shape[0] != D:
            raise self._err("W", f"expected shape (num_directions={D}, gates*hidden, input), "
                                 f"got {None if self.W is None else self.W.shape}")
        if self.R is None or self.R.ndim != 3:
            raise self._err("R", "expected a 3-D array (num_directions, gates*hidden, hidden)")
        G = self.W.shape[1]
        if G % self.gates or G == 0:
            raise self._err("W", f"dimension 1 ({G}) is not {self.gates} x hidden_size")
        H = G // self.gates
        if len(self.activations) != self.n_acts * D:
            raise self._err("activations", f"{len(self.activations)} given, expected {self.n_acts * D} "
                                           f"({self.n_acts} per direction)")
        for a in self.activations:
            if a.name not in RNN_ACTIVATIONS:
                raise self._err("activations", f"{a.name!r} is not an ONNX RNN activation")
        if self.clip is not None and not (self.clip > 0 and math.isfinite(self.clip)):
            raise self._err("clip", f"must be a positive finite number, got {self.clip}")
        _check_shape(self, "Wb", self.Wb, (D, G), required=False)
        _check_shape(self, "Rb", self.Rb, (D, G), required=False)
        _check_shape(self, "W", self.W, (D, G, self.input_size))
        if self.input_size == 0:
            raise self._err("W", "input size is 0")
        return D, G, H


@dataclass(eq=False)
class LSTM(_Recurrent):
    P: np.ndarray | None = None
    proj: np.ndarray | None = None
    input_forget: bool = False
    initial_c: np.ndarray | None = None

    kind = "LSTM"
    gates = 4
    n_acts = 3
    default_acts = ("Sigmoid", "Tanh", "Tanh")

    def __post_init__(self):
        self._init_common()
        self.P = _f64(self.P, "LSTM.P")
        self.proj = _f64(self.proj, "LSTM.proj")
        self.initial_c = _f64(self.initial_c, "LSTM.initial_c")
        self.input_forget = bool(self.input_forget)

    @property
    def hidden_size(self) -> int:
        return int(self.W.shape[1] // 4) if self.W is not None and self.W.ndim == 3 else 0

    @property
    def unit_output_size(self) -> int:
        return int(self.proj.shape[1]) if self.proj is not None else self.hidden_size

    def validate(self):
        D, G, H = self._validate_common()
        Hr = self.unit_output_size
        if self.proj is not None:
            _check_shape(self, "proj", self.proj, (D, Hr, H))
        _check_shape(self, "R", self.R, (D, G, Hr))
        _check_shape(self, "P", self.P, (D, 3 * H), required=False)
        _check_shape(self, "initial_h", self.initial_h, (D, Hr), required=False)
        _check_shape(self, "initial_c", self.initial_c, (D, H), required=False)


@dataclass(eq=False)
class GRU(_Recurrent):
    linear_before_reset: bool = False

    kind = "GRU"
    gates = 3
    n_acts = 2
    default_acts = ("Sigmoid", "Tanh")

    def __post_init__(self):
        self._init_common()
        self.linear_before_reset = bool(self.linear_before_reset)

    def validate(self):
        D, G, H = self._validate_common()
        _check_shape(self, "R", self.R, (D, G, H))
        _check_shape(self, "initial_h", self.initial_h, (D, H), required=False)


@dataclass(eq=False)
class RNN(_Recurrent):
    kind = "RNN"
    gates = 1
    n_acts = 1
    default_acts = ("Tanh",)

    def __post_init__(self):
        self._init_common()

    def validate(self):
        D, G, H = self._validate_common()
        _check_shape(self, "R", self.R, (D, G, H))
        _check_shape(self, "initial_h", self.initial_h, (D, H), required=False)


@dataclass(eq=False)
class Dense(Layer):
    W: np.ndarray
    b: np.ndarray | None = None
    activation: ActLike = "Identity"
    name: str = ""

    kind = "Dense"

    def __post_init__(self):
        self.W = _f64(self.W, "Dense.W")
        self.b = _f64(self.b, "Dense.b")
        self.activation = _as_act(self.activation)

    @property
    def input_size(self) -> int:
        return int(self.W.shape[1])

    @property
    def output_size(self) -> int:
        return int(self.W.shape[0])

    def validate(self):
        if self.W is None or self.W.ndim != 2 or 0 in self.W.shape:
            raise self._err("W", f"expected a non-empty (out, in) matrix, got "
                                 f"{None if self.W is None else self.W.shape}")
        _check_shape(self, "W", self.W, self.W.shape)
        _check_shape(self, "b", self.b, (self.output_size,), required=False)


@dataclass(eq=False)
class Activation(Layer):
    activation: ActLike
    name: str = ""

    kind = "Activation"

    def __post_init__(self):
        self.activation = _as_act(self.activation)

    def validate(self):
        pass


LAYER_TYPES = {cls.kind: cls for cls in (LSTM, GRU, RNN, Dense, Activation)}


@dataclass(eq=False)
class Network:
    """An ordered stack of layers; ``input_size`` is needed when the first layer is an Activation."""

    layers: list
    input_size: int | None = None
    name: str = ""

    def __post_init__(self):
        self.layers = list(self.layers)
        if self.input_size is None and self.layers and hasattr(self.layers[0], "input_size"):
            self.input_size = self.layers[0].input_size
        self.validate()

    @property
    def output_size(self) -> int:
        return self.layer_sizes()[-1][1]

    def layer_sizes(self) -> list[tuple[int, int]]:
        """(input width, output width) of every layer."""
        sizes, width = [], self.input_size
        for layer in self.layers:
            out = layer.output_size if hasattr(layer, "output_size") else width
            sizes.append((width, out))
            width = out
        return sizes

    @property
    def streamable(self) -> bool:
        """False when a layer runs backwards in time (reverse/bidirectional): it needs whole sequences."""
        return all(getattr(l, "direction", "forward") == "forward" for l in self.layers)

    def validate(self) -> None:
        if not self.layers:
            raise NetworkError("Network has no layers")
        if self.input_size is None or int(self.input_size) <= 0:
            raise NetworkError("Network.input_size must be a positive integer")
        self.input_size = int(self.input_size)
        width = self.input_size
        for i, layer in enumerate(self.layers):
            if not isinstance(layer, Layer):
                raise NetworkError(f"layer {i}: {type(layer).__name__} is not a streamlstm layer")
            layer.validate()
            if isinstance(layer, Activation):
                continue
            if layer.input_size != width:
                raise NetworkError(f"layer {i} ({layer.label}): input size {layer.input_size} "
                                   f"does not match the previous output size {width}")
            width = layer.output_size

    # ------------------------------------------------------------------ native format
    def save(self, path: str | Path) -> None:
        """Write the network as a native ``.npz`` (JSON config + float64 arrays; no pickle)."""
        arrays, config = {}, []
        for i, layer in enumerate(self.layers):
            cfg = {"kind": layer.kind}
            for f in fields(layer):
                v = getattr(layer, f.name)
                if f.name in _ARRAY_FIELDS[layer.kind]:
                    if v is not None:
                        arrays[f"layer{i}.{f.name}"] = v
                elif isinstance(v, Act):
                    cfg[f.name] = v.to_json()
                elif f.name == "activations":
                    cfg[f.name] = [a.to_json() for a in v]
                else:
                    cfg[f.name] = v
            config.append(cfg)
        meta = {"format": "streamlstm-network", "version": 1, "input_size": self.input_size,
                "name": self.name, "layers": config}
        arrays["__config__"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
        with open(path, "wb") as fh:
            np.savez(fh, **arrays)

    @staticmethod
    def load(path: str | Path) -> "Network":
        """Read a native ``.npz`` written by :meth:`save` (no pickle; sizes checked before reading)."""
        try:
            arrays = _read_npz(path)
            if "__config__" not in arrays:
                raise NetworkError(f"{path}: not a streamlstm network file (no __config__)")
            meta = json.loads(bytes(arrays.pop("__config__")).decode())
            if not isinstance(meta, dict) or not isinstance(meta.get("layers"), list):
                raise NetworkError(f"{path}: malformed config")
        except NetworkError:
            raise
        except Exception as e:  # zip errors, bad JSON, truncated arrays
            raise NetworkError(f"{path}: cannot read native network file: {e}") from None
        if meta.get("format") != "streamlstm-network":
            raise NetworkError(f"{path}: unknown format {meta.get('format')!r}")
        layers = [_layer_from_config(path, i, cfg, arrays) for i, cfg in enumerate(meta["layers"])]
        input_size = meta.get("input_size")
        if not isinstance(input_size, int) or isinstance(input_size, bool):
            raise NetworkError(f"{path}: input_size must be an integer, got {input_size!r}")
        return Network(layers, input_size=input_size, name=str(meta.get("name", "")))

    def summary(self) -> str:
        lines = [f"Network {self.name!r}: input {self.input_size}" if self.name
                 else f"Network: input {self.input_size}"]
        for i, (layer, (inp, out)) in enumerate(zip(self.layers, self.layer_sizes())):
            extra = ""
            if isinstance(layer, _Recurrent):
                extra = f" hidden={layer.hidden_size} direction={layer.direction}"
                if isinstance(layer, LSTM) and layer.proj is not None:
                    extra += f" proj={layer.unit_output_size}"
            act_ = getattr(layer, "activation", None)
            if act_ is not None and act_.name != "Identity":
                extra += f" activation={act_.name}"
            nparams = sum(a.size for a in layer.arrays().values())
            lines.append(f"  [{i}] {layer.label}: {inp} -> {out}{extra} params={nparams}")
        return "\n".join(lines)
