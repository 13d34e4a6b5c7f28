"""Recurrent cells: one direction of an LSTM/GRU/RNN layer advanced over T frames.

Each cell receives ``Z`` (T, G) holding bias + input projection for every frame, adds the
recurrent term, applies the gate equations (ONNX semantics) and writes the unit's output
into columns ``col:col+P`` of ``dst`` (T, W). Gates are packed with stride ``Hp`` (H rounded
up to the SIMD width): gate k of an LSTM occupies ``Z[t, k*Hp : k*Hp+H]``.
"""

from numba import njit

from . import activations as A
from .config import JIT
from .gemv import gemv_acc, gemv_set


@njit(**JIT)
def clip_(v, lim):
    for j in range(v.shape[0]):
        v[j] = min(max(v[j], -lim), lim)


@njit(**JIT)
def lstm_fused_fast(z, c, h, H, Hp):
    """Default LSTM gates (sigmoid, tanh, tanh), float32 fast activations, one pass."""
    for j in range(H):
        ig = A.sigmoid_fast(z[j])
        og = A.sigmoid_fast(z[Hp + j])
        fg = A.sigmoid_fast(z[2 * Hp + j])
        gg = A.tanh_fast(z[3 * Hp + j])
        cn = fg * c[j] + ig * gg
        c[j] = cn
        h[j] = og * A.tanh_fast(cn)


@njit(**JIT)
def lstm_cell(Z, Rt, projt, peep, h, c, u, v, acts, par, flags, H, Hp, P, reverse, dst, col):
    """LSTM direction unit. acts = (f, g, h) codes; par = [fa, fb, ga, gb, ha, hb, clip];
    flags = (clip, input_forget, peephole, projection, fused)."""
    T = Z.shape[0]
    fa, fb, ga, gb, ha, hb, lim = par[0], par[1], par[2], par[3], par[4], par[5], par[6]
    do_clip, ifg, has_peep, has_proj, fused = flags[0], flags[1], flags[2], flags[3], flags[4]
    for s in range(T):
        t = T - 1 - s if reverse else s
        z = Z[t]
        gemv_acc(Rt, h, z)
        if fused:
            lstm_fused_fast(z, c, h, H, Hp)
        else:
            zi = z[0:H]
            zo = z[Hp:Hp + H]
            zf = z[2 * Hp:2 * Hp + H]
            zc = z[3 * Hp:3 * Hp + H]
            if has_peep:
                for j in range(H):
                    zi[j] += peep[j] * c[j]
                    zf[j] += peep[2 * H + j] * c[j]
            if do_clip:
                clip_(zi, lim)
                clip_(zf, lim)
                clip_(zc, lim)
            A.apply(acts[0], fa, fb, zi)
            if ifg:
                for j in range(H):
                    zf[j] = 1.0 - zi[j]
            else:
                A.apply(acts[0], fa, fb, zf)
            A.apply(acts[1], ga, gb, zc)
            for j in range(H):
                c[j] = zf[j] * c[j] + zi[j] * zc[j]
            if has_peep:
                for j in range(H):
                    zo[j] += peep[H + j] * c[j]
            if do_clip:
                clip_(zo, lim)
            A.apply(acts[0], fa, fb, zo)
            m = u[0:H]
            for j in range(H):
                m[j] = c[j]
            A.apply(acts[2], ha, hb, m)
            if has_proj:
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
        out = dst[t]
        for p in range(P):
            out[col + p] = h[p]


@njit(**JIT)
def gru_cell(Z, Rt_zr, Rt_h, rbh, h, u, v, acts, par, flags, H, Hp, reverse, dst, col):
    """GRU direction unit. acts = (f, g); par = [fa, fb, ga, gb, -, -, clip];
    flags = (clip, linear_before_reset)."""
    T = Z.shape[0]
    fa, fb, ga, gb, lim = par[0], par[1], par[2], par[3], par[6]
    do_clip, lbr = flags[0], flags[1]
    for s in range(T):
        t = T - 1 - s if reverse else s
        z = Z[t]
        gemv_acc(Rt_zr, h, z)
        zz = z[0:H]
        zr = z[Hp:Hp + H]
        zh = z[2 * Hp:2 * Hp + H]
        if do_clip:
            clip_(zz, lim)
            clip_(zr, lim)
        A.apply(acts[0], fa, fb, zz)
        A.apply(acts[0], fa, fb, zr)
        if lbr:
            gemv_set(Rt_h, h, rbh, u)
            for j in range(H):
                zh[j] += zr[j] * u[j]
        else:
            rh = v[0:H]
            for j in range(H):
                rh[j] = zr[j] * h[j]
            gemv_acc(Rt_h, rh, z[2 * Hp:3 * Hp])
        if do_clip:
            clip_(zh, lim)
        A.apply(acts[1], ga, gb, zh)
        for j in range(H):
            h[j] = (1.0 - zz[j]) * zh[j] + zz[j] * h[j]
        out = dst[t]
        for j in range(H):
            out[col + j] = h[j]


@njit(**JIT)
def rnn_cell(Z, Rt, h, acts, par, flags, H, reverse, dst, col):
    """Plain RNN direction unit: h = f(W x + R h + b)."""
    T = Z.shape[0]
    fa, fb, lim = par[0], par[1], par[6]
    for s in range(T):
        t = T - 1 - s if reverse else s
        z = Z[t]
        gemv_acc(Rt, h, z)
        zh = z[0:H]
        if flags[0]:
            clip_(zh, lim)
        A.apply(acts[0], fa, fb, zh)
        out = dst[t]
        for j in range(H):
            h[j] = zh[j]
            out[col + j] = zh[j]
