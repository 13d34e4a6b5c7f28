"""The framework-neutral IR: a Network is an ordered, immutable stack of layer units.

Every converter produces a Network in ONNX's conventions; the planner and the kernels consume
it. The units live one per kind in ``layers/`` (each module states its conventions) and are
re-exported here. A Network validates itself once, when it is built: each unit checked its own
fields, the Network checks that the widths chain. Arrays are float64 and read-only; the Plan
casts them to the model's dtype.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from .errors import NetworkError
from .layers import (
    DIRECTIONS, GRU, LAYER_ACTIVATIONS, LAYER_KINDS, LSTM, MERGE_MODES, RNN, RNN_ACTIVATIONS, Act,
    ActLike, Activation, Dense, Layer, Recurrent, act,
)

LAYER_TYPES = LAYER_KINDS  # the registry of kinds, by its older name

__all__ = [
    "Network", "Layer", "LSTM", "GRU", "RNN", "Dense", "Activation", "Act", "ActLike", "act",
    "Recurrent", "RNN_ACTIVATIONS", "LAYER_ACTIVATIONS", "DIRECTIONS", "MERGE_MODES", "LAYER_TYPES",
]


@dataclass(frozen=True, eq=False, repr=False)
class Network:
    """An ordered stack of layers; ``input_size`` is needed when the first layer does not fix it
    (an Activation)."""

    layers: Sequence[Layer]
    input_size: int | None = None
    name: str = ""

    def __post_init__(self):
        layers = tuple(self.layers)
        object.__setattr__(self, "layers", layers)
        object.__setattr__(self, "name", str(self.name))
        if not layers:
            raise NetworkError("Network has no layers")
        for i, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise NetworkError(f"layer {i}: {type(layer).__name__} is not a streamlstm layer")
        size = self.input_size
        if size is None:
            size = getattr(layers[0], "input_size", None)
        if isinstance(size, bool) or size is None or int(size) <= 0:
            raise NetworkError("Network.input_size must be a positive integer")
        object.__setattr__(self, "input_size", int(size))
        width = self.input_size
        for i, layer in enumerate(layers):
            need = getattr(layer, "input_size", None)
            if need is not None and need != width:
                raise NetworkError(f"layer {i} ({layer.label}): input size {need} "
                                   f"does not match the previous output size {width}")
            width = layer.output_width(width)

    @property
    def output_size(self) -> int:
        return self.layer_sizes()[-1][1]

    def layer_sizes(self) -> list[tuple[int, int]]:
        """(input width, output width) of every layer."""
        sizes, width = [], self.input_size
        for layer in self.layers:
            out = layer.output_width(width)
            sizes.append((width, out))
            width = out
        return sizes

    @property
    def streamable(self) -> bool:
        """False when a layer runs backwards in time (reverse/bidirectional): it needs whole sequences."""
        return all(getattr(l, "direction", "forward") == "forward" for l in self.layers)

    def validate(self) -> None:
        """A Network is validated once, when it is built; there is nothing left to check."""

    def save(self, path: str | Path) -> None:
        """Write the network as a native ``.npz`` (JSON config + float64 arrays; no pickle)."""
        from .converters.native_file import write_network

        write_network(self, path)

    @staticmethod
    def load(path: str | Path) -> "Network":
        """Read a native ``.npz`` written by :meth:`save` (no pickle; sizes checked before reading)."""
        from .converters.native_file import read_network

        layers, input_size, name = read_network(path)
        return Network(layers, input_size=input_size, name=name)

    def __repr__(self) -> str:
        kinds = ", ".join(layer.kind for layer in self.layers[:8]) + (", ..." if len(self.layers) > 8 else "")
        name = f" {self.name!r}" if self.name else ""
        return f"<streamlstm.Network{name} input={self.input_size} layers=[{kinds}]>"

    def summary(self) -> str:
        lines = [f"Network {self.name!r}: input {self.input_size}" if self.name
                 else f"Network: input {self.input_size}"]
        for i, (layer, (inp, out)) in enumerate(zip(self.layers, self.layer_sizes())):
            extra = layer.describe()
            act_ = getattr(layer, "activation", None)
            if act_ is not None and act_.name != "Identity":
                extra += f" activation={act_.name}"
            nparams = sum(a.size for a in layer.arrays().values())
            lines.append(f"  [{i}] {layer.label}: {inp} -> {out}{extra} params={nparams}")
        return "\n".join(lines)
