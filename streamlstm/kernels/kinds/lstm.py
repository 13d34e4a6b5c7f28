"""LSTM maths: one frame of one direction (ONNX gates i, o, f, c), two row kinds.

``fused_frame`` serves ``K_LSTM_FUSED`` rows (default activations, fast float32 forms, no clip,
peepholes, projection or input_forget: the Plan decides); ``frame`` serves ``K_LSTM`` rows,
whose named flags below say which extras the layer has. Both receive ``z`` (G) holding bias
+ W x + R h and update the stream's h (P) and c (H) at ``base`` of ``state`` in place. Gates
are packed with stride Hp: gate k occupies ``z[k*Hp : k*Hp+H]``.
"""

from numba import njit

from . import RowKind
from .. import activations as A
from ..config import JIT
from ..layout import (
    C_ACT_F, C_ACT_G, C_ACT_H, C_GATE_STRIDE, C_HIDDEN, C_OUT, C_PARAMS, C_STATE_H,
    FIRST_KIND_FIELD, PAR_CLIP, PAR_F_ALPHA, PAR_F_BETA, PAR_G_ALPHA, PAR_G_BETA, PAR_H_ALPHA,
    PAR_H_BETA,
)
from ..simd import panel_acc
from ..views import matrix, vector

K_LSTM = 0        # any activations, clip, peepholes, projection or input_forget
K_LSTM_FUSED = 1  # the default gates in their fast forms, nothing else

LSTM_STATE_C = FIRST_KIND_FIELD      # S_: cell state c (H)
LSTM_PROJ = FIRST_KIND_FIELD + 1     # W_: projection, transposed (H, Pp) panel-major
LSTM_PROJ_WIDTH = FIRST_KIND_FIELD + 2  # Pp: projection width padded (0: no projection)
LSTM_PEEP = FIRST_KIND_FIELD + 3     # W_: peepholes (3H) i, o, f
LSTM_CLIPS = FIRST_KIND_FIELD + 4    # 1: clip gate pre-activations to W_[C_PARAMS + PAR_CLIP]
LSTM_INPUT_FORGET = FIRST_KIND_FIELD + 5  # 1: f = 1 - i
LSTM_PEEPHOLES = FIRST_KIND_FIELD + 6     # 1: peephole terms
LSTM_PROJECTS = FIRST_KIND_FIELD + 7      # 1: h = proj @ (o * h(c))


@njit(inline="always", **JIT)
def fused_frame(w, row, state, base, z, u, v):
    """A ``K_LSTM_FUSED`` frame: sigmoid, tanh, tanh in their fast forms, one vector pass.

    The gate blocks are taken as slices first: ``z[Hp + j]`` with a runtime ``Hp`` compiles to
    gathers (Numba's negative-index wraparound), a slice indexed by the loop counter to plain
    vector loads."""
    H = row[C_HIDDEN]
    fused_gates(z, vector(state, base + row[LSTM_STATE_C], H), vector(state, base + row[C_STATE_H], H),
                H, row[C_GATE_STRIDE])


@njit(inline="always", **JIT)
def fused_gates(z, c, h, H, Hp):
    """The default gates over z, updating c and h (H) in place."""
    zi = z[0:H]
    zo = z[Hp:Hp + H]
    zf = z[2 * Hp:2 * Hp + H]
    zc = z[3 * Hp:3 * Hp + H]
    for j in range(H):
        ig = A.sigmoid_fast(zi[j])
        og = A.sigmoid_fast(zo[j])
        fg = A.sigmoid_fast(zf[j])
        gg = A.tanh_fast(zc[j])
        cn = fg * c[j] + ig * gg
        c[j] = cn
        h[j] = og * A.tanh_fast(cn)


@njit(inline="always", **JIT)
def frame(w, row, state, base, z, u, v):
    """A ``K_LSTM`` frame; u and v are scratch vectors of at least max(Hp, Pp)."""
    H = row[C_HIDDEN]
    Hp = row[C_GATE_STRIDE]
    P = row[C_OUT]
    h = vector(state, base + row[C_STATE_H], P)
    c = vector(state, base + row[LSTM_STATE_C], H)
    pa = row[C_PARAMS]
    f, g, hh = row[C_ACT_F], row[C_ACT_G], row[C_ACT_H]
    fa, fb = w[pa + PAR_F_ALPHA], w[pa + PAR_F_BETA]
    ga, gb = w[pa + PAR_G_ALPHA], w[pa + PAR_G_BETA]
    ha, hb = w[pa + PAR_H_ALPHA], w[pa + PAR_H_BETA]
    lim = w[pa + PAR_CLIP]
    clips = row[LSTM_CLIPS] != 0
    peepholes = row[LSTM_PEEPHOLES] != 0
    zi = z[0:H]
    zo = z[Hp:Hp + H]
    zf = z[2 * Hp:2 * Hp + H]
    zc = z[3 * Hp:3 * Hp + H]
    peep = vector(w, row[LSTM_PEEP], 3 * H)
    pi = peep[0:H]
    po = peep[H:2 * H]
    pf = peep[2 * H:3 * H]
    if peepholes:
        for j in range(H):
            zi[j] += pi[j] * c[j]
            zf[j] += pf[j] * c[j]
    if clips:
        A.clip_(zi, lim)
        A.clip_(zf, lim)
        A.clip_(zc, lim)
    A.apply(f, fa, fb, zi)
    if row[LSTM_INPUT_FORGET] != 0:
        for j in range(H):
            zf[j] = 1.0 - zi[j]
    else:
        A.apply(f, fa, fb, zf)
    A.apply(g, ga, gb, zc)
    for j in range(H):
        c[j] = zf[j] * c[j] + zi[j] * zc[j]
    if peepholes:
        for j in range(H):
            zo[j] += po[j] * c[j]
    if clips:
        A.clip_(zo, lim)
    A.apply(f, fa, fb, zo)
    m = u[0:H]
    for j in range(H):
        m[j] = c[j]
    A.apply(hh, ha, hb, m)
    if row[LSTM_PROJECTS] != 0:
        for j in range(H):
            m[j] *= zo[j]
        projt = matrix(w, row[LSTM_PROJ], H, row[LSTM_PROJ_WIDTH])
        for p in range(projt.shape[1]):
            v[p] = 0.0
        panel_acc(projt, m, v, None, 0, -1)
        for p in range(P):
            h[p] = v[p]
    else:
        for j in range(H):
            h[j] = zo[j] * m[j]


ROW_KINDS = (RowKind(K_LSTM, "LSTM", frame, "recurrent", group="core"),
             RowKind(K_LSTM_FUSED, "LSTM (fused)", fused_frame, "recurrent", group="core"))
