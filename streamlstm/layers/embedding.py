"""The Embedding unit: a frame is one token id, its output the id's row of ``table`` (V, D).
Maths: ``kernels/kinds/embedding.py``. Ids are checked (an integer in [0, V)) before a step touches
any state."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import NetworkError
from ..kernels.kinds.embedding import EMBED_TABLE, EMBED_VOCAB, K_EMBED
from .base import Layer, check_shape, register

FLOAT32_EXACT = 1 << 24  # ids above this are not all representable in a float32 frame


@register
@dataclass(frozen=True, eq=False, repr=False)
class Embedding(Layer):
    table: np.ndarray
    name: str = ""

    kind = "Embedding"
    array_fields = ("table",)

    def __post_init__(self):
        self._freeze_arrays()
        if self.table is None or self.table.ndim != 2 or 0 in self.table.shape:
            raise self._err("table", f"expected a non-empty (vocabulary, width) matrix, got "
                                     f"{None if self.table is None else self.table.shape}")
        check_shape(self, "table", self.table, self.table.shape)

    @property
    def input_size(self) -> int:
        return 1

    @property
    def vocabulary(self) -> int:
        return int(self.table.shape[0])

    def output_width(self, width: int) -> int:
        return int(self.table.shape[1])

    def describe(self) -> str:
        return f" vocabulary={self.vocabulary}"

    def pack(self, builder) -> None:
        if builder.source != 0:
            raise NetworkError(f"{self.label}: an Embedding reads token ids, so it must read the network input")
        if builder.dtype == np.float32 and self.vocabulary > FLOAT32_EXACT:
            raise NetworkError(f"{self.label}: {self.vocabulary} ids do not all fit a float32 frame; use float64")
        D = self.output_width(1)
        dst = builder.next_sequence()
        r = builder.row(K_EMBED, dst, D, col=0, out=D)
        r[EMBED_TABLE] = builder.add(self.table)
        r[EMBED_VOCAB] = self.vocabulary
        builder.vocabulary = self.vocabulary
        builder.advance(dst, D)
