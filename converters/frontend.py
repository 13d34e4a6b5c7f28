"""Front-end layers shared by the torch and Keras importers: BatchNorm folding and activation
fusion into convolutions, run on a converter's layer list before ``normalise``.

A converter emits ``BatchNorm`` (eval-mode statistics as a per-channel scale and shift) where
the file has one. ``fold_front_end`` folds it into the Dense or TimeConv1d right before it when
that layer has no activation (W and b scaled per output channel); else into the input side of
the Dense or recurrent layer right after it (W scaled per input, W @ shift added to the input
bias; not into a convolution, whose zero padding would then be shifted too); else it becomes an
``Elementwise`` mul and add. An Activation right after a TimeConv1d without one is fused into it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Iterable

import numpy as np

from streamlstm.errors import ConversionError
from streamlstm.network import Activation, Dense, Elementwise, Recurrent, TimeConv1d


@dataclass(frozen=True)
class BatchNorm:
    """y = x * scale + shift per channel (a converter's marker; never reaches a Network)."""

    scale: np.ndarray
    shift: np.ndarray
    name: str = ""

    @staticmethod
    def from_stats(mean, var, gamma, beta, eps: float, name: str, where: str) -> "BatchNorm":
        """The affine map of eval-mode batch normalisation; ``gamma``/``beta`` may be None."""
        mean, var = np.asarray(mean, np.float64), np.asarray(var, np.float64)
        n = mean.shape
        if mean.ndim != 1 or var.shape != n or any(a is not None and np.shape(a) != n for a in (gamma, beta)):
            raise ConversionError(f"{where}: batch norm statistics of shapes {np.shape(mean)}, {np.shape(var)}, "
                                  f"{np.shape(gamma)}, {np.shape(beta)}; expected one vector per channel")
        if not (np.isfinite(eps) and eps >= 0) or np.any(var + eps <= 0):
            raise ConversionError(f"{where}: batch norm variance + eps must be positive (eps={eps})")
        scale = (1.0 if gamma is None else np.asarray(gamma, np.float64)) / np.sqrt(var + float(eps))
        scale = np.broadcast_to(scale, n).copy()
        shift = (0.0 if beta is None else np.asarray(beta, np.float64)) - mean * scale
        if not (np.all(np.isfinite(scale)) and np.all(np.isfinite(shift))):
            raise ConversionError(f"{where}: batch norm parameters contain NaN or Inf")
        return BatchNorm(scale, shift, name)


def _width(layer) -> int | None:
    if isinstance(layer, Dense):
        return layer.output_size
    if isinstance(layer, TimeConv1d):
        return layer.out_channels
    return None


def _fold_into_input(layer, bn: BatchNorm):
    """``layer`` (Dense or recurrent) reading ``x * scale + shift`` instead of x, or None."""
    s, t = bn.scale, bn.shift
    if isinstance(layer, Dense) and layer.input_size == s.size:
        b = layer.b if layer.b is not None else np.zeros(layer.output_size)
        return replace(layer, W=layer.W * s[None, :], b=b + layer.W @ t)
    if isinstance(layer, Recurrent) and layer.input_size == s.size:
        Wb = layer.Wb if layer.Wb is not None else np.zeros(layer.W.shape[:2])
        return replace(layer, W=layer.W * s[None, None, :], Wb=Wb + layer.W @ t)
    return None


def fold_front_end(layers: Iterable, source: str) -> list:
    """``layers`` with every BatchNorm folded or turned into Elementwise units, and activations
    fused into the TimeConv1d before them."""
    out: list = []
    todo = list(layers)
    for i, layer in enumerate(todo):
        prev = out[-1] if out else None
        if isinstance(layer, BatchNorm):
            n = layer.scale.size
            nxt = _fold_into_input(todo[i + 1], layer) if i + 1 < len(todo) else None
            if isinstance(prev, (Dense, TimeConv1d)) and prev.activation.name == "Identity" and _width(prev) == n:
                s = layer.scale
                b = prev.b if prev.b is not None else np.zeros(n)
                W = prev.W * (s[:, None] if prev.W.ndim == 2 else s[:, None, None])
                out[-1] = replace(prev, W=W, b=b * s + layer.shift)
            elif nxt is not None:
                todo[i + 1] = nxt
            else:
                out.append(Elementwise("mul", layer.scale, name=f"{layer.name}.scale" if layer.name else ""))
                out.append(Elementwise("add", layer.shift, name=f"{layer.name}.shift" if layer.name else ""))
            continue
        if (isinstance(layer, Activation) and isinstance(prev, TimeConv1d) and prev.activation.name == "Identity"
                and layer.activation.name not in ("Identity", "Softmax")):
            out[-1] = replace(prev, activation=layer.activation)
            continue
        out.append(layer)
    if not out:
        raise ConversionError(f"{source}: nothing to import")
    return out
