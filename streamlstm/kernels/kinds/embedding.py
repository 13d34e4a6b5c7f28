"""Embedding rows (``K_EMBED``): a frame's token id selects a row of the table. The ids were
checked (integer, inside the vocabulary) when the input was loaded (``HDR_VOCAB``)."""

from numba import njit

from . import RowKind
from ..config import JIT
from ..layout import C_COL, C_OUT, FIRST_KIND_FIELD

K_EMBED = 8

EMBED_TABLE = FIRST_KIND_FIELD      # W_: the (vocabulary, width) table, row-major
EMBED_VOCAB = FIRST_KIND_FIELD + 1


@njit(**JIT)
def embed_rows(w, row, src, dst):
    D, col, base = row[C_OUT], row[C_COL], row[EMBED_TABLE]
    for t in range(src.shape[0]):
        k = base + int(src[t, 0]) * D
        e = w[k:k + D]
        o = dst[t, col:col + D]
        for j in range(D):
            o[j] = e[j]


ROW_KINDS = (RowKind(K_EMBED, "Embedding", embed_rows, args=("w", "row", "src", "dst")),)
