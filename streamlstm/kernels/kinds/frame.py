"""The per-frame plumbing rows: data movement (``K_GATHER``), reductions and pooling
(``K_REDUCE``), elementwise maths with a constant (``K_ELEM``) and between two sequences
(``K_BINARY``), and the first-frame hold of whole-sequence summaries (``K_HOLD_FIRST``).

Every shape op an exporter emits within a frame (Slice, Transpose, Pad, Concat, Expand, a
Gather of constant indices) is one index map, computed when the layer is built: ``K_GATHER``
copies ``src[index[j]]`` into column ``col + j`` of its destination (0 where the index is -1).
Index maps live in the table's data area (``ints``).
"""

import math

from numba import njit

from . import RowKind
from ..config import JIT
from ..layout import C_COL, C_OUT, FIRST_KIND_FIELD
from ..views import sequence

K_GATHER = 9
K_REDUCE = 10
K_ELEM = 11
K_BINARY = 12
K_HOLD_FIRST = 16

GATHER_INDEX = FIRST_KIND_FIELD        # ints: C_OUT source positions (-1: zero)

REDUCE_INDEX = FIRST_KIND_FIELD        # ints: C_OUT * group source positions (-1: left out)
REDUCE_GROUP = FIRST_KIND_FIELD + 1    # positions per output
REDUCE_MODE = FIRST_KIND_FIELD + 2     # REDUCE_SUM (times the scale) or REDUCE_MAX
REDUCE_SCALE = FIRST_KIND_FIELD + 3    # W_: one factor per output (sum mode)
REDUCE_SUM = 0
REDUCE_MAX = 1

ELEM_OP = FIRST_KIND_FIELD             # one of ELEM_OPS
ELEM_CONST = FIRST_KIND_FIELD + 1      # W_: the constant, one value per column
ELEM_OPS = {"add": 0, "mul": 1, "sub_from": 2, "div": 3, "div_into": 4, "pow": 5, "max": 6,
            "min": 7, "sqrt": 8, "abs": 9, "neg": 10, "exp": 11, "log": 12, "square": 13,
            "reciprocal": 14, "erf": 15}

HOLD_COLUMNS = FIRST_KIND_FIELD        # ints: the columns that hold frame 0's value
HOLD_COUNT = FIRST_KIND_FIELD + 1

BINARY_OP = FIRST_KIND_FIELD           # one of BINARY_OPS
BINARY_SRC2 = FIRST_KIND_FIELD + 1     # the second source sequence (as wide as the output)
BINARY_OPS = {"add": 0, "sub": 1, "mul": 2, "div": 3, "max": 4, "min": 5, "pow": 6}


@njit(**JIT)
def gather_rows(row, ints, src, dst):
    O, col = row[C_OUT], row[C_COL]
    index = ints[row[GATHER_INDEX]:row[GATHER_INDEX] + O]
    for t in range(src.shape[0]):
        a = src[t]
        o = dst[t, col:col + O]
        for j in range(O):
            k = index[j]
            o[j] = a[k] if k >= 0 else 0.0


@njit(**JIT)
def reduce_rows(w, row, ints, src, dst):
    O, col, M = row[C_OUT], row[C_COL], row[REDUCE_GROUP]
    index = ints[row[REDUCE_INDEX]:row[REDUCE_INDEX] + O * M]
    scale = w[row[REDUCE_SCALE]:row[REDUCE_SCALE] + O]
    is_max = row[REDUCE_MODE] == REDUCE_MAX
    for t in range(src.shape[0]):
        a = src[t]
        o = dst[t, col:col + O]
        for j in range(O):
            grp = index[j * M:(j + 1) * M]
            if is_max:
                acc = -math.inf
                for m in range(M):
                    if grp[m] >= 0:
                        acc = max(acc, a[grp[m]])
                o[j] = acc
            else:
                acc = 0.0
                for m in range(M):
                    if grp[m] >= 0:
                        acc += a[grp[m]]
                o[j] = acc * scale[j]


@njit(inline="always", **JIT)
def _elem(op, x, c):
    if op == 0:
        return x + c
    if op == 1:
        return x * c
    if op == 2:
        return c - x
    if op == 3:
        return x / c
    if op == 4:
        return c / x
    if op == 5:
        return x ** c
    if op == 6:
        return max(x, c)
    if op == 7:
        return min(x, c)
    if op == 8:
        return math.sqrt(x)
    if op == 9:
        return abs(x)
    if op == 10:
        return -x
    if op == 11:
        return math.exp(x)
    if op == 12:
        return math.log(x)
    if op == 13:
        return x * x
    if op == 14:
        return 1.0 / x
    return math.erf(x)


@njit(**JIT)
def elem_rows(w, row, src, dst):
    O, col, op = row[C_OUT], row[C_COL], row[ELEM_OP]
    c = w[row[ELEM_CONST]:row[ELEM_CONST] + O]
    for t in range(src.shape[0]):
        a = src[t]
        o = dst[t, col:col + O]
        if op == 1:  # the common cases get their own vectorisable loops
            for j in range(O):
                o[j] = a[j] * c[j]
        elif op == 0:
            for j in range(O):
                o[j] = a[j] + c[j]
        elif op == 13:
            for j in range(O):
                o[j] = a[j] * a[j]
        else:
            for j in range(O):
                o[j] = _elem(op, a[j], c[j])


@njit(**JIT)
def binary_rows(row, X, xoff, work, span, T, src, dst):
    src2 = sequence(row[BINARY_SRC2], X, xoff, work, span, T, row[C_OUT])
    O, col, op = row[C_OUT], row[C_COL], row[BINARY_OP]
    for t in range(src.shape[0]):
        a = src[t]
        b = src2[t]
        o = dst[t, col:col + O]
        if op == 0:
            for j in range(O):
                o[j] = a[j] + b[j]
        elif op == 1:
            for j in range(O):
                o[j] = a[j] - b[j]
        elif op == 2:
            for j in range(O):
                o[j] = a[j] * b[j]
        elif op == 3:
            for j in range(O):
                o[j] = a[j] / b[j]
        elif op == 4:
            for j in range(O):
                o[j] = max(a[j], b[j])
        elif op == 5:
            for j in range(O):
                o[j] = min(a[j], b[j])
        else:
            for j in range(O):
                o[j] = a[j] ** b[j]


@njit(**JIT)
def hold_first_rows(row, ints, src, dst):
    """dst[t] = src[t], except the HOLD columns, which take src[0] (a backward direction's
    summary of a whole sequence, in every row)."""
    O, col, n = row[C_OUT], row[C_COL], row[HOLD_COUNT]
    cols = ints[row[HOLD_COLUMNS]:row[HOLD_COLUMNS] + n]
    first = src[0]
    for t in range(src.shape[0]):
        a = src[t]
        o = dst[t, col:col + O]
        for j in range(O):
            o[j] = a[j]
        for m in range(n):
            o[cols[m]] = first[cols[m]]


ROW_KINDS = (
    RowKind(K_GATHER, "Rearrange", gather_rows, args=("row", "ints", "src", "dst")),
    RowKind(K_REDUCE, "Reduce", reduce_rows, args=("w", "row", "ints", "src", "dst")),
    RowKind(K_ELEM, "Elementwise", elem_rows, args=("w", "row", "src", "dst")),
    RowKind(K_BINARY, "Binary", binary_rows, args=("row", "X", "xoff", "work", "span", "T", "src", "dst")),
    RowKind(K_HOLD_FIRST, "HoldFirst", hold_first_rows, args=("row", "ints", "src", "dst")),
)
