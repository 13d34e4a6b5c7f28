"""Merge rows (``K_MERGE``): the two directions of a bidirectional layer combined."""

from numba import njit

from . import RowKind
from ..config import JIT
from ..layout import FIRST_KIND_FIELD

K_MERGE = 7  # sum / mul / ave of the two directions of a bidirectional layer

MERGE_MODE = FIRST_KIND_FIELD  # one of MERGE_CODES (concat needs no merge row)
MERGE_CODES = {"concat": 0, "sum": 1, "mul": 2, "ave": 3}


@njit(**JIT)
def merge_rows(row, src, dst):
    """dst[t] = merge of the two halves of src[t]: 1 sum, 2 mul, 3 ave."""
    mode = row[MERGE_MODE]
    P = dst.shape[1]
    for t in range(src.shape[0]):
        a = src[t, 0:P]
        b = src[t, P:2 * P]
        o = dst[t]
        if mode == 1:
            for j in range(P):
                o[j] = a[j] + b[j]
        elif mode == 2:
            for j in range(P):
                o[j] = a[j] * b[j]
        else:
            for j in range(P):
                o[j] = 0.5 * (a[j] + b[j])


ROW_KINDS = (RowKind(K_MERGE, "merge", merge_rows, args=("row", "src", "dst"), group="core"),)
