"""GRU maths: one frame of one direction (ONNX gates z, r, h), one row kind per
``linear_before_reset``.

``z`` (3Hp) arrives holding bias + W x, plus R_zr h in its z and r blocks (the stored
recurrent matrix of a GRU row covers only the z and r gates); the h gate's recurrent product
needs r first, so it is computed here from the float matrix at ``GRU_WH``.
"""

from numba import njit

from . import RowKind
from .. import activations as A
from ..config import JIT
from ..layout import (
    C_ACT_F, C_ACT_G, C_GATE_STRIDE, C_HIDDEN, C_PARAMS, C_STATE_H, FIRST_KIND_FIELD, PAR_CLIP,
    PAR_F_ALPHA, PAR_F_BETA, PAR_G_ALPHA, PAR_G_BETA,
)
from ..simd import panel_acc
from ..views import matrix, vector

K_GRU = 2      # linear_before_reset = 0
K_GRU_LBR = 3  # linear_before_reset = 1

GRU_WH = FIRST_KIND_FIELD          # W_: h-gate recurrent weights, transposed (H, Hp) panel-major
GRU_RBH = FIRST_KIND_FIELD + 1     # W_: h-gate recurrent bias (Hp), K_GRU_LBR rows only
GRU_CLIPS = FIRST_KIND_FIELD + 2   # 1: clip gate pre-activations to W_[C_PARAMS + PAR_CLIP]


@njit(inline="always", **JIT)
def _zr_gates(w, row, z, H, Hp):
    pa = row[C_PARAMS]
    f, fa, fb = row[C_ACT_F], w[pa + PAR_F_ALPHA], w[pa + PAR_F_BETA]
    zz = z[0:H]
    zr = z[Hp:Hp + H]
    if row[GRU_CLIPS] != 0:
        A.clip_(zz, w[pa + PAR_CLIP])
        A.clip_(zr, w[pa + PAR_CLIP])
    A.apply(f, fa, fb, zz)
    A.apply(f, fa, fb, zr)


@njit(inline="always", **JIT)
def _h_gate_and_update(w, row, z, h, H, Hp):
    pa = row[C_PARAMS]
    zz = z[0:H]
    zh = z[2 * Hp:2 * Hp + H]
    if row[GRU_CLIPS] != 0:
        A.clip_(zh, w[pa + PAR_CLIP])
    A.apply(row[C_ACT_G], w[pa + PAR_G_ALPHA], w[pa + PAR_G_BETA], zh)
    for j in range(H):
        h[j] = (1.0 - zz[j]) * zh[j] + zz[j] * h[j]


@njit(**JIT)
def frame(w, row, state, base, z, u, v):
    """A ``K_GRU`` frame: the h gate sees W x + R_h (r * h)."""
    H = row[C_HIDDEN]
    Hp = row[C_GATE_STRIDE]
    h = vector(state, base + row[C_STATE_H], H)
    _zr_gates(w, row, z, H, Hp)
    zr = z[Hp:Hp + H]
    rh = v[0:H]
    for j in range(H):
        rh[j] = zr[j] * h[j]
    panel_acc(matrix(w, row[GRU_WH], H, Hp), rh, z[2 * Hp:3 * Hp], None, 0, -1)
    _h_gate_and_update(w, row, z, h, H, Hp)


@njit(**JIT)
def frame_lbr(w, row, state, base, z, u, v):
    """A ``K_GRU_LBR`` frame: the h gate sees W x + r * (R_h h + Rb_h)."""
    H = row[C_HIDDEN]
    Hp = row[C_GATE_STRIDE]
    h = vector(state, base + row[C_STATE_H], H)
    _zr_gates(w, row, z, H, Hp)
    zr = z[Hp:Hp + H]
    zh = z[2 * Hp:2 * Hp + H]
    rbh = vector(w, row[GRU_RBH], Hp)
    for j in range(Hp):
        u[j] = rbh[j]
    panel_acc(matrix(w, row[GRU_WH], H, Hp), h, u, None, 0, -1)
    for j in range(H):
        zh[j] += zr[j] * u[j]
    _h_gate_and_update(w, row, z, h, H, Hp)


ROW_KINDS = (RowKind(K_GRU, "GRU", frame, "recurrent", group="core"),
             RowKind(K_GRU_LBR, "GRU (linear_before_reset)", frame_lbr, "recurrent", group="core"))
