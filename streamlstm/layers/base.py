"""What every layer unit shares: activations by ONNX name, array checks, the registry of kinds.

A layer unit is a frozen dataclass (validated once, in ``__post_init__``; its arrays float64
and read-only) that subclasses ``Layer`` and declares:

- ``kind``: its name in the registry (``LAYER_KINDS``), in native files and in summaries;
- ``array_fields``: which of its fields are arrays (the native format stores those apart);
- ``input_size`` (units with weights: the input width they need; elementwise units have
  none) and ``output_width(width)``: the output width for an input of ``width``;
- ``pack(builder)``: the rows, weights and state it adds to a Plan (``plan.PlanBuilder``);
- ``arity``: how many values it reads (1; None for any number, with ``output_width_of``);
- ``streamable``: False when it needs future frames (only whole sequences can run it).

``register`` adds a kind to the registry; nothing else needs to learn its name.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import ClassVar, Union

import numpy as np

from ..errors import NetworkError

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


@dataclass(frozen=True, eq=False)
class Act:
    """An activation by ONNX name, with its alpha/beta (nan where the function has none)."""

    name: str
    alpha: float = _NAN
    beta: float = _NAN

    # Equal when the JSON forms are: an unused (nan) alpha equals another unused one, on every
    # Python (3.13's dataclass equality compares fields with ==, and nan != nan).
    def __eq__(self, other) -> bool:
        return isinstance(other, Act) and self.to_json() == other.to_json()

    def __hash__(self) -> int:
        return hash(tuple(self.to_json()))

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


def as_act(a: ActLike) -> Act:
    """An Act checked against the known activations (a name gets ONNX's defaults)."""
    if isinstance(a, Act):
        return act(a.name, None if math.isnan(a.alpha) else a.alpha, None if math.isnan(a.beta) else a.beta)
    return act(a)


def _json_float(x: float):
    return None if x is None or math.isnan(x) else float(x)


def _from_json_float(x) -> float:
    return _NAN if x is None else float(x)


def frozen_array(a, name: str) -> np.ndarray | None:
    """A read-only float64 copy of ``a`` (None stays None), or NetworkError. A read-only float64
    array that owns its data is kept as it is, so layers with tied weights share one array."""
    if a is None:
        return None
    if (isinstance(a, np.ndarray) and a.dtype == np.float64 and not a.flags.writeable
            and a.flags.owndata):
        return a
    try:
        out = np.array(a, dtype=np.float64, copy=True)
    except (TypeError, ValueError) as e:
        raise NetworkError(f"{name}: not a numeric array ({e})") from None
    out.flags.writeable = False
    return out


class Layer:
    """The common behaviour of layer units (see the module docstring)."""

    kind: ClassVar[str] = ""
    array_fields: ClassVar[tuple[str, ...]] = ()
    arity: ClassVar[int | None] = 1
    name: str

    @property
    def streamable(self) -> bool:
        return True

    def output_width_of(self, widths: tuple[int, ...]) -> int:
        """The output width of a unit reading several values (``arity`` != 1)."""
        raise NotImplementedError(f"{type(self).__name__}.output_width_of")

    @property
    def label(self) -> str:
        return f"{self.kind} {self.name!r}" if self.name else self.kind

    def __repr__(self) -> str:
        # Bounded: the arrays are summarised by their shapes, never printed.
        shapes = " ".join(f"{k}{tuple(v.shape)}" for k, v in self.arrays().items())
        return f"<{self.label}{self.describe()} {shapes}>".replace(" >", ">")

    def _err(self, fieldname: str, msg: str) -> NetworkError:
        return NetworkError(f"{self.label}: {fieldname}: {msg}")

    def _set(self, fieldname: str, value) -> None:
        """Normalise a field while the frozen unit is being built (``__post_init__`` only)."""
        object.__setattr__(self, fieldname, value)

    def _freeze_arrays(self) -> None:
        for f in self.array_fields:
            self._set(f, frozen_array(getattr(self, f), f"{self.kind}.{f}"))

    def validate(self) -> None:
        """A unit is validated once, when it is built; there is nothing left to check."""

    def output_width(self, width: int) -> int:
        """The output width for an input of ``width``."""
        return width

    def arrays(self) -> dict[str, np.ndarray]:
        """The unit's arrays that are set, by field name."""
        return {k: getattr(self, k) for k in self.array_fields if getattr(self, k) is not None}

    def config(self) -> dict:
        """The unit's non-array fields as JSON values (activations as [name, alpha, beta])."""
        cfg = {}
        for f in fields(self):
            if f.name in self.array_fields:
                continue
            v = getattr(self, f.name)
            if isinstance(v, Act):
                v = v.to_json()
            elif isinstance(v, tuple) and v and isinstance(v[0], Act):
                v = [a.to_json() for a in v]
            cfg[f.name] = v
        return cfg

    @classmethod
    def from_config(cls, cfg: dict, arrays: dict[str, np.ndarray]) -> "Layer":
        """The unit a ``config()`` and its ``arrays()`` describe (``Act`` fields from JSON)."""
        kw = {}
        for k, v in cfg.items():
            if k == "activations":
                v = [Act.from_json(a) for a in v]
            elif k == "activation":
                v = Act.from_json(v)
            kw[k] = v
        for f in cls.array_fields:
            if f in kw:
                raise NetworkError(f"{cls.kind}: {f} must be an array, not a config value")
            if f in arrays:
                kw[f] = arrays[f]
        return cls(**kw)

    def describe(self) -> str:
        """Extra words for ``Network.summary`` (size details beyond the widths)."""
        return ""

    def pack(self, builder) -> None:
        """Add the unit's rows, weights and state to a Plan being built (see ``plan.PlanBuilder``)."""
        raise NotImplementedError(f"{type(self).__name__}.pack")


LAYER_KINDS: dict[str, type] = {}


def register(cls: type) -> type:
    """Class decorator: add a layer unit to the registry of kinds (``cls.kind`` must be new)."""
    if not (isinstance(cls, type) and issubclass(cls, Layer)) or not cls.kind:
        raise TypeError(f"register: {cls!r} is not a Layer subclass with a kind")
    if LAYER_KINDS.get(cls.kind, cls) is not cls:
        raise ValueError(f"register: layer kind {cls.kind!r} is already registered")
    LAYER_KINDS[cls.kind] = cls
    return cls


def check_shape(layer: Layer, fname: str, a: np.ndarray | None, shape: tuple, required: bool = True) -> None:
    """NetworkError unless ``a`` has ``shape`` and finite values (None passes unless required)."""
    if a is None:
        if required:
            raise layer._err(fname, "missing")
        return
    if a.shape != shape:
        raise layer._err(fname, f"shape {a.shape}, expected {shape}")
    if not np.all(np.isfinite(a)):
        raise layer._err(fname, "contains NaN or Inf")


def pad(n: int, lanes: int) -> int:
    """n rounded up to a multiple of ``lanes``."""
    return -(-n // lanes) * lanes


def gate_packed_t(M: np.ndarray, gates: int, H: int, Hp: int) -> np.ndarray:
    """(gates*H, K) -> transposed (K, gates*Hp), each gate block starting at a multiple of Hp."""
    K = M.shape[1]
    out = np.zeros((K, gates * Hp))
    for g in range(gates):
        out[:, g * Hp:g * Hp + H] = M[g * H:(g + 1) * H].T
    return out


def gate_packed_vec(v: np.ndarray, gates: int, H: int, Hp: int) -> np.ndarray:
    """(gates*H,) -> (gates*Hp,), each gate block starting at a multiple of Hp."""
    out = np.zeros(gates * Hp)
    for g in range(gates):
        out[g * Hp:g * Hp + H] = v[g * H:(g + 1) * H]
    return out
