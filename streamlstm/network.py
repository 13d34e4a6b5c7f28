"""The framework-neutral IR: a Network is an ordered, immutable list of layer units.

Each unit reads the output of the unit before it, unless ``sources`` says otherwise: a graph
whose frame branches (an STFT's real and imaginary halves, a residual) gives each unit the
indices of the units it reads (-1: the network input), in an order where every source comes
first. The last unit's output is the network's output.

Every converter produces a Network in ONNX's conventions; the planner and the kernels consume
it. The units live one per kind in ``layers/`` (each module states its conventions) and are
re-exported here. A Network validates itself once, when it is built: each unit checked its own
fields, the Network checks that the widths chain. Arrays are float64 and read-only; the Plan
casts them to the model's dtype.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from .errors import NetworkError
from .layers import (
    DIRECTIONS, GRU, LAYER_ACTIVATIONS, LAYER_KINDS, LSTM, MERGE_MODES, RNN, RNN_ACTIVATIONS, Act,
    ActLike, Activation, Binary, Concat, Conv1d, Dense, Elementwise, Embedding, Layer, LayerNorm, Rearrange,
    Recurrent, Reduce, TimeConv1d, act,
)

LAYER_TYPES = LAYER_KINDS  # the registry of kinds, by its older name

__all__ = [
    "Network", "Layer", "LSTM", "GRU", "RNN", "Dense", "Activation", "Act", "ActLike", "act",
    "Embedding", "Conv1d", "TimeConv1d", "LayerNorm", "Rearrange", "Reduce", "Elementwise", "Binary", "Concat",
    "Recurrent", "RNN_ACTIVATIONS", "LAYER_ACTIVATIONS", "DIRECTIONS", "MERGE_MODES", "LAYER_TYPES",
]


@dataclass(frozen=True, eq=False, repr=False)
class Network:
    """An ordered list of layers; ``input_size`` is needed when the first layer does not fix it
    (an Activation). ``sources[i]`` lists the values layer i reads (-1: the input, j: layer
    j's output); None, or a layer's entry None, means the previous layer's output. ``outputs``
    splits the output into several named outputs of these widths (a model then returns a
    tuple)."""

    layers: Sequence[Layer]
    input_size: int | None = None
    name: str = ""
    sources: Sequence | None = None
    outputs: Sequence[int] | None = None

    def __post_init__(self):
        layers = tuple(self.layers)
        object.__setattr__(self, "layers", layers)
        object.__setattr__(self, "name", str(self.name))
        if not layers:
            raise NetworkError("Network has no layers")
        for i, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise NetworkError(f"layer {i}: {type(layer).__name__} is not a streamlstm layer")
        object.__setattr__(self, "sources", _sources(self.sources, len(layers)))
        size = self.input_size
        if size is None:
            size = getattr(layers[0], "input_size", None)
        if isinstance(size, bool) or size is None or int(size) <= 0:
            raise NetworkError("Network.input_size must be a positive integer")
        object.__setattr__(self, "input_size", int(size))
        widths: list[int] = []
        for i, layer in enumerate(layers):
            ins = [self.input_size if j < 0 else widths[j] for j in self.inputs_of(i)]
            arity = layer.arity
            if (arity is None and not ins) or (arity is not None and len(ins) != arity):
                raise NetworkError(f"layer {i} ({layer.label}): reads {len(ins)} values, expected "
                                   f"{'at least 1' if arity is None else arity}")
            need = getattr(layer, "input_size", None)
            if need is not None and need != ins[0]:
                raise NetworkError(f"layer {i} ({layer.label}): input size {need} "
                                   f"does not match the previous output size {ins[0]}")
            widths.append(layer.output_width(ins[0]) if arity == 1 else layer.output_width_of(tuple(ins)))
        object.__setattr__(self, "_widths", tuple(widths))
        if self.outputs is not None:
            try:
                outs = tuple(operator.index(w) for w in self.outputs)
            except TypeError:
                raise NetworkError(f"Network.outputs: expected output widths, got {self.outputs!r}") from None
            if not outs or any(w <= 0 for w in outs) or sum(outs) != widths[-1]:
                raise NetworkError(f"Network.outputs: widths {list(outs)} must be positive and add up to the "
                                   f"output size {widths[-1]}")
            object.__setattr__(self, "outputs", outs if len(outs) > 1 else None)

    def inputs_of(self, i: int) -> tuple[int, ...]:
        """The values layer i reads: -1 is the network input, j the output of layer j."""
        return (i - 1,) if self.sources is None or self.sources[i] is None else self.sources[i]

    @property
    def is_chain(self) -> bool:
        """True when every layer reads the one before it."""
        return all(self.inputs_of(i) == (i - 1,) for i in range(len(self.layers)))

    @property
    def output_size(self) -> int:
        return self._widths[-1]

    def layer_sizes(self) -> list[tuple[int, int]]:
        """(width of the first value read, output width) of every layer."""
        return [(self.input_size if self.inputs_of(i)[0] < 0 else self._widths[self.inputs_of(i)[0]], w)
                for i, w in enumerate(self._widths)]

    @property
    def streamable(self) -> bool:
        """False when a layer needs future frames (a reverse or bidirectional recurrent layer, a
        non-causal convolution over time): such a network runs only on whole sequences."""
        return all(getattr(l, "direction", "forward") == "forward" and l.streamable for l in self.layers)

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

        layers, input_size, name, sources, outputs = read_network(path)
        return Network(layers, input_size=input_size, name=name, sources=sources, outputs=outputs)

    def __repr__(self) -> str:  # noqa: D105
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
            reads = "" if self.inputs_of(i) == (i - 1,) else \
                " reads " + ", ".join("input" if j < 0 else f"[{j}]" for j in self.inputs_of(i))
            lines.append(f"  [{i}] {layer.label}: {inp} -> {out}{extra}{reads} params={nparams}")
        return "\n".join(lines)


def _sources(sources, n: int):
    """``sources`` checked and frozen (tuples of ints; None for a chain), or NetworkError."""
    if sources is None:
        return None
    try:
        entries = list(sources)
    except TypeError:
        raise NetworkError("Network.sources: expected a list with one entry per layer") from None
    if len(entries) != n:
        raise NetworkError(f"Network.sources: {len(entries)} entries for {n} layers")
    out = []
    for i, e in enumerate(entries):
        if e is None:
            out.append((i - 1,))
            continue
        try:
            ids = tuple(e)
        except TypeError:
            raise NetworkError(f"Network.sources[{i}]: expected a list of layer indices, got {e!r}") from None
        try:
            if any(isinstance(j, bool) for j in ids):
                raise TypeError
            ids = tuple(operator.index(j) for j in ids)
        except TypeError:
            raise NetworkError(f"Network.sources[{i}]: expected layer indices, got {e!r}") from None
        for j in ids:
            if not -1 <= j < i:
                raise NetworkError(f"Network.sources[{i}]: {j} is not an earlier layer (-1 .. {i - 1})")
        out.append(ids)
    if all(e == (i - 1,) for i, e in enumerate(out)):
        return None
    return tuple(out)
