"""The post-import normalisation pass every converter ends with: IR layers in, a Network out.

Converters emit the layers they read, one for one. This pass removes what does not compute
(Identity activations), fuses an Activation into the Dense or convolution right before it when
that has none (a convolution only an elementwise one), and builds the Network (validated once),
turning a validation failure into a ``ConversionError`` that names the source. It builds new layer objects and never changes the
ones it is given.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Iterable

from streamlstm.errors import ConversionError, NetworkError
from streamlstm.network import Activation, Conv1d, Dense, Network, TimeConv1d

FUSES_ACTIVATION = (Dense, Conv1d, TimeConv1d)


def _is_identity(layer) -> bool:
    return isinstance(layer, Activation) and layer.activation.name == "Identity"


def fuse_activations(layers: Iterable) -> list:
    """Drop Identity activations and fold each Activation into a preceding Dense that has none."""
    out: list = []
    for layer in layers:
        if _is_identity(layer):
            continue
        prev = out[-1] if out else None
        if (isinstance(layer, Activation) and isinstance(prev, FUSES_ACTIVATION)
                and prev.activation.name == "Identity"
                and (isinstance(prev, Dense) or layer.activation.name != "Softmax")):
            out[-1] = replace(prev, activation=layer.activation)
        else:
            out.append(layer)
    return out


def fuse_graph_activations(layers: list, sources: list) -> tuple[list, list]:
    """``fuse_activations`` for a graph: an elementwise Activation whose only input is read by
    nothing else folds into the Dense or convolution producing it; indices are renumbered."""
    readers: dict[int, int] = {}
    for srcs in sources:
        for j in srcs:
            readers[j] = readers.get(j, 0) + 1
    out, new_sources, new_index = [], [], {-1: -1}
    for i, (layer, srcs) in enumerate(zip(layers, sources)):
        j = srcs[0] if len(srcs) == 1 else None
        prev = out[new_index[j]] if j is not None and j >= 0 else None
        if (isinstance(layer, Activation) and layer.activation.name != "Softmax"
                and isinstance(prev, FUSES_ACTIVATION) and prev.activation.name == "Identity"
                and readers.get(j) == 1 and j != len(layers) - 1):
            out[new_index[j]] = replace(prev, activation=layer.activation)
            new_index[i] = new_index[j]
            continue
        if _is_identity(layer) and len(srcs) == 1:
            new_index[i] = new_index[srcs[0]]
            continue
        new_index[i] = len(out)
        out.append(layer)
        new_sources.append([new_index[k] for k in srcs])
    return out, new_sources


def normalise(layers: Iterable, *, source: str, input_size: int | None = None, name: str = "",
              sources=None) -> Network:
    """The Network of ``layers`` after the shared pass; ``source`` names the origin in errors.

    ``input_size`` is needed only when no layer has weights to tell it. A graph (``sources``,
    see ``Network``) keeps its layers as they are.
    """
    if sources is not None:
        chain, sources = fuse_graph_activations(list(layers), [list(s) for s in sources])
    else:
        chain = fuse_activations(layers)
    if input_size is None:
        input_size = next((l.input_size for l in chain if hasattr(l, "input_size")), None)
    if not chain:
        raise ConversionError(f"{source}: nothing to import (no layer that computes anything)")
    if input_size is None:
        raise ConversionError(f"{source}: cannot tell the input width (no layer has weights and no "
                              "input shape is declared)")
    try:
        return Network(chain, input_size=input_size, name=str(name or ""), sources=sources)
    except NetworkError as e:
        raise ConversionError(f"{source}: imported layers do not form a valid network: {e}") from None
