"""The Activation unit: an elementwise activation or Softmax over the whole frame.
Maths: ``kernels/kinds/activation.py``."""

from __future__ import annotations

from dataclasses import dataclass

from ..kernels.kinds.activation import K_ACT
from ..kernels.layout import C_ACT_F, C_PARAMS
from .base import ActLike, Layer, as_act, register


@register
@dataclass(frozen=True, eq=False, repr=False)
class Activation(Layer):
    activation: ActLike
    name: str = ""

    kind = "Activation"

    def __post_init__(self):
        self._set("activation", as_act(self.activation))

    def pack(self, builder) -> None:
        width = builder.width
        dst = builder.next_sequence()
        r = builder.row(K_ACT, dst, width, col=0, out=width)
        r[C_ACT_F] = builder.code(self.activation)
        r[C_PARAMS] = builder.params((self.activation,), None)
        builder.advance(dst, width)
