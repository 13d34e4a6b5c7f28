"""Dense maths: the end of a ``K_DENSE`` row, y = act(b + W x), once the interpreter has run
the input product into Z."""

from numba import njit

from . import RowKind
from .. import activations as A
from ..config import JIT
from ..layout import C_ACT_F, C_COL, C_OUT, C_PARAMS, PAR_F_ALPHA, PAR_F_BETA

K_DENSE = 5


@njit(inline="always", **JIT)
def dense_rows(w, row, Z, dst):
    """dst[t, col:col+O] = act(Z[t, :O]) for every row t (Z holds b + W x)."""
    O = row[C_OUT]
    col = row[C_COL]
    pa = row[C_PARAMS]
    code, alpha, beta = row[C_ACT_F], w[pa + PAR_F_ALPHA], w[pa + PAR_F_BETA]
    for t in range(Z.shape[0]):
        z = Z[t, 0:O]
        A.apply(code, alpha, beta, z)
        o = dst[t, col:col + O]
        for j in range(O):
            o[j] = z[j]


ROW_KINDS = (RowKind(K_DENSE, "Dense", dense_rows, "product", group="core"),)
