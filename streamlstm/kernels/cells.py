"""Recurrent cells: one direction of an LSTM/GRU/RNN layer advanced over T frames.

Each cell receives ``Z`` (T, G) holding bias + input projection for every frame, adds the
recurrent term, applies the gate equations (ONNX semantics) and writes the unit's output
into columns ``col:col+P`` of ``dst`` (T, W). Gates are packed with stride ``Hp`` (H rounded
up to the SIMD width): gate k of an LSTM occupies ``Z[t, k*Hp : k*Hp+H]``.
"""

from numba import njit

from . import activations as A
from .config import JIT
from .gemv import gemv_acc, gemv_acc_stored


@njit(**JIT)
def clip_(v, lim):
    for j in range(v.shape[0]):
        v[j] = min(max(v[j], -lim), lim)


@njit(inline="always", **JIT)
def lstm_fused_fast(z, c, h, H, Hp):
    """Default LSTM gates (sigmoid, tanh, tanh), float32 fast activations, one vector pass.

    The gate blocks are taken as slices first: ``z[Hp + j]`` with a runtime ``Hp`` compiles to
    gathers (Numba's negative-index wraparound), a slice indexed by the loop counter to plain
    vector loads (0.55 us instead of 0.76 us at H=128)."""
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
def lstm_frame(z, h, c, u, v, projt, peep, acts, par, flags, H, Hp, P):
    """One LSTM frame: z (G) holds bias + W x + R h; updates c (H) and h (P) in place.
    acts = (f, g, h) codes; par = [fa, fb, ga, gb, ha, hb, clip];
    flags = (clip, input_forget, peephole, projection, fused)."""
    if flags[4]:
        lstm_fused_fast(z, c, h, H, Hp)
        return
    fa, fb, ga, gb, ha, hb, lim = par[0], par[1], par[2], par[3], par[4], par[5], par[6]
    zi = z[0:H]
    zo = z[Hp:Hp + H]
    zf = z[2 * Hp:2 * Hp + H]
    zc = z[3 * Hp:3 * Hp + H]
    pi = peep[0:H]
    po = peep[H:2 * H]
    pf = peep[2 * H:3 * H]
    if flags[2]:
        for j in range(H):
            zi[j] += pi[j] * c[j]
            zf[j] += pf[j] * c[j]
    if flags[0]:
        clip_(zi, lim)
        clip_(zf, lim)
        clip_(zc, lim)
    A.apply(acts[0], fa, fb, zi)
    if flags[1]:
        for j in range(H):
            zf[j] = 1.0 - zi[j]
    else:
        A.apply(acts[0], fa, fb, zf)
    A.apply(acts[1], ga, gb, zc)
    for j in range(H):
        c[j] = zf[j] * c[j] + zi[j] * zc[j]
    if flags[2]:
        for j in range(H):
            zo[j] += po[j] * c[j]
    if flags[0]:
        clip_(zo, lim)
    A.apply(acts[0], fa, fb, zo)
    m = u[0:H]
    for j in range(H):
        m[j] = c[j]
    A.apply(acts[2], ha, hb, m)
    if flags[3]:
        for j in range(H):
            m[j] *= zo[j]
        for p in range(projt.shape[1]):
            v[p] = 0.0
        gemv_acc(projt, m, v)
        for p in range(P):
            h[p] = v[p]
    else:
        for j in range(H):
            h[j] = zo[j] * m[j]


@njit(**JIT)
def gru_frame(z, h, u, v, Rt_h, rbh, acts, par, flags, H, Hp):
    """One GRU frame: z (3Hp) holds bias + W x, plus R_zr h in its z and r blocks;
    updates h (H) in place. acts = (f, g); flags = (clip, linear_before_reset)."""
    fa, fb, ga, gb, lim = par[0], par[1], par[2], par[3], par[6]
    zz = z[0:H]
    zr = z[Hp:Hp + H]
    zh = z[2 * Hp:2 * Hp + H]
    if flags[0]:
        clip_(zz, lim)
        clip_(zr, lim)
    A.apply(acts[0], fa, fb, zz)
    A.apply(acts[0], fa, fb, zr)
    if flags[1]:
        for j in range(Hp):
            u[j] = rbh[j]
        gemv_acc(Rt_h, h, u)
        for j in range(H):
            zh[j] += zr[j] * u[j]
    else:
        rh = v[0:H]
        for j in range(H):
            rh[j] = zr[j] * h[j]
        gemv_acc(Rt_h, rh, z[2 * Hp:3 * Hp])
    if flags[0]:
        clip_(zh, lim)
    A.apply(acts[1], ga, gb, zh)
    for j in range(H):
        h[j] = (1.0 - zz[j]) * zh[j] + zz[j] * h[j]


@njit(**JIT)
def rnn_frame(z, h, acts, par, flags, H):
    """One plain RNN frame: z (Hp) holds bias + W x + R h; sets h = f(z)."""
    zh = z[0:H]
    if flags[0]:
        clip_(zh, par[6])
    A.apply(acts[0], par[0], par[1], zh)
    for j in range(H):
        h[j] = zh[j]


@njit(inline="always", **JIT)
def emit(h, dst, t, col, P):
    out = dst[t, col:col + P]  # sliced first: ``dst[t][col + p]`` compiles to scalar stores
    for p in range(P):
        out[p] = h[p]


@njit(inline="always", **JIT)
def lstm_cell(Z, R, projt, peep, h, c, u, v, acts, par, flags, H, Hp, P, reverse, dst, col):
    """LSTM direction unit over the T frames of Z. R = (wbuf, offset, format, scale offset,
    helper mailbox) of the recurrent matrix (P, G)."""
    T, G = Z.shape
    w, ro, fmt, so, mb = R
    for s in range(T):
        t = T - 1 - s if reverse else s
        z = Z[t]
        gemv_acc_stored(w, ro, P, G, fmt, so, h, z, mb)
        lstm_frame(z, h, c, u, v, projt, peep, acts, par, flags, H, Hp, P)
        emit(h, dst, t, col, P)


@njit(**JIT)
def gru_cell(Z, R, Rt_h, rbh, h, u, v, acts, par, flags, H, Hp, reverse, dst, col):
    """GRU direction unit over the T frames of Z. R = (wbuf, offset, format, scale offset,
    helper mailbox) of the z,r recurrent matrix (H, 2Hp)."""
    T = Z.shape[0]
    w, ro, fmt, so, mb = R
    for s in range(T):
        t = T - 1 - s if reverse else s
        z = Z[t]
        gemv_acc_stored(w, ro, H, 2 * Hp, fmt, so, h, z, mb)
        gru_frame(z, h, u, v, Rt_h, rbh, acts, par, flags, H, Hp)
        emit(h, dst, t, col, H)


@njit(**JIT)
def rnn_cell(Z, R, h, acts, par, flags, H, reverse, dst, col):
    """Plain RNN direction unit over the T frames of Z. R = (wbuf, offset, format, scale
    offset, helper mailbox) of the recurrent matrix (H, G)."""
    T, G = Z.shape
    w, ro, fmt, so, mb = R
    for s in range(T):
        t = T - 1 - s if reverse else s
        z = Z[t]
        gemv_acc_stored(w, ro, H, G, fmt, so, h, z, mb)
        rnn_frame(z, h, acts, par, flags, H)
        emit(h, dst, t, col, H)
