"""Plain RNN maths: one frame of one direction, h = f(z) with z = bias + W x + R h."""

from numba import njit

from . import RowKind
from .. import activations as A
from ..config import JIT
from ..layout import C_ACT_F, C_HIDDEN, C_PARAMS, C_STATE_H, FIRST_KIND_FIELD, PAR_CLIP, PAR_F_ALPHA, PAR_F_BETA
from ..views import vector

K_RNN = 4

RNN_CLIPS = FIRST_KIND_FIELD  # 1: clip the pre-activation to W_[C_PARAMS + PAR_CLIP]


@njit(**JIT)
def frame(w, row, state, base, z, u, v):
    """A ``K_RNN`` frame: updates the stream's h (H) in place."""
    H = row[C_HIDDEN]
    pa = row[C_PARAMS]
    zh = z[0:H]
    if row[RNN_CLIPS] != 0:
        A.clip_(zh, w[pa + PAR_CLIP])
    A.apply(row[C_ACT_F], w[pa + PAR_F_ALPHA], w[pa + PAR_F_BETA], zh)
    h = vector(state, base + row[C_STATE_H], H)
    for j in range(H):
        h[j] = zh[j]


ROW_KINDS = (RowKind(K_RNN, "RNN", frame, "recurrent", group="core"),)
