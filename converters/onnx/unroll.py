"""Re-roll a simple RNN that an exporter unrolled into per-step ops back into one RNN node.

``torch.onnx.export(dynamo=True)`` writes ``nn.RNN`` as ``L = X @ W + b_ih`` followed, for each
time step ``t``, by ``a_t = act(a_{t-1} @ R + b_hh + L[t])`` (``a_{-1} @ R + b_hh`` folded into
one constant) and ``Concat(a_0 .. a_{T-1}, axis=0)``. ``reroll`` finds that pattern and puts an
``RNN`` node (+ Squeeze of its direction axis) in place of the Concat; the unrolled nodes stay in
the graph but nothing the output needs reads them any more. The re-rolled node runs any length,
not only the exported one. Anything that does not match exactly is left alone.
"""

from __future__ import annotations

import numpy as np
from onnx import helper, numpy_helper

from .fold import Folder, Graph, attrs, axes_param, slice_params

ACTS = {"Tanh": "Tanh", "Relu": "Relu"}


def reroll(g: Graph) -> Graph:
    """The graph with every matched unrolled RNN replaced by an RNN node (in place)."""
    folder = Folder(g)
    for node in list(g.nodes):
        if node.op_type != "Concat" or len(node.output) != 1:
            continue
        found = _match(g, folder, node)
        if found is None:
            continue
        x, W, R, B, act = found
        base = f"{node.output[0]}__rerolled"
        consts = {"W": W, "R": R, "B": B, "ax": np.array([1], np.int64)}
        for k, v in consts.items():
            g.initializers[f"{base}_{k}"] = numpy_helper.from_array(v, f"{base}_{k}")
        rnn = helper.make_node("RNN", [x, f"{base}_W", f"{base}_R", f"{base}_B"], [f"{base}_Y"],
                               name=f"{node.name or base}.rnn", hidden_size=int(W.shape[1]),
                               activations=[act])
        sq = helper.make_node("Squeeze", [f"{base}_Y", f"{base}_ax"], list(node.output),
                              name=f"{node.name or base}.squeeze")
        k = g.nodes.index(node)
        g.nodes[k:k + 1] = [rnn, sq]
        g.index()
    return g


def _const(folder: Folder, name: str):
    v = folder.value(name)
    return v if isinstance(v, np.ndarray) else None


def _prod(g: Graph, name: str, op: str | tuple):
    k = g.producer.get(name)
    if k is None:
        return None
    n = g.nodes[k]
    return n if n.op_type in ((op,) if isinstance(op, str) else op) else None


def _affine(g: Graph, folder: Folder, name: str):
    """``name`` = MatMul(a, M) [+ b] with M (and b) constant: (a, M, b or None)."""
    add = _prod(g, name, "Add")
    b = None
    if add is not None:
        for k in (0, 1):
            c = _const(folder, add.input[1 - k])
            if c is not None and _prod(g, add.input[k], "MatMul") is not None:
                b, name = c, add.input[k]
                break
        else:
            return None
    mm = _prod(g, name, "MatMul")
    if mm is None:
        return None
    M = _const(folder, mm.input[1])
    if M is None or M.ndim != 2 or _const(folder, mm.input[0]) is not None:
        return None
    return mm.input[0], M, b


def _step_slice(g: Graph, folder: Folder, name: str):
    """``name`` = L[t] picked on axis 0 (Squeeze(Slice) or Gather): (L, t)."""
    gat = _prod(g, name, "Gather")
    if gat is not None:
        idx = _const(folder, gat.input[1])
        if idx is None or idx.ndim != 0 or attrs(gat).get("axis", 0) != 0:
            return None
        return gat.input[0], int(idx)
    sq = _prod(g, name, "Squeeze")
    if sq is None or axes_param(folder, sq, attrs(sq), 13) != [0]:
        return None
    sl = _prod(g, sq.input[0], "Slice")
    if sl is None:
        return None
    try:
        starts, ends, axes, steps = slice_params(folder, sl, attrs(sl), 3)
    except Exception:
        return None
    if axes != [0] or steps != [1] or ends[0] != starts[0] + 1 or starts[0] < 0:
        return None
    return sl.input[0], int(starts[0])


def _match(g: Graph, folder: Folder, cat):
    """(X, W, R, B, activation) of an unrolled RNN ending in ``cat``, or None."""
    if attrs(cat).get("axis") != 0 or not cat.input:
        return None
    acts = [_prod(g, a, tuple(ACTS)) for a in cat.input]
    if any(a is None for a in acts) or len({a.op_type for a in acts}) != 1:
        return None
    L = R = bh = first = None
    for t, a in enumerate(acts):
        direct = _step_slice(g, folder, a.input[0]) if t == 0 else None
        if direct is not None:             # no bias and h0 = 0: a_0 = act(L[0])
            if direct[1] != 0:
                return None
            L, first = direct[0], np.zeros(1)
            continue
        add = _prod(g, a.input[0], "Add")
        if add is None:
            return None
        for k in (0, 1):
            got = _step_slice(g, folder, add.input[k])
            if got is not None and got[1] == t and (L is None or got[0] == L):
                L, other = got[0], add.input[1 - k]
                break
        else:
            return None
        if t == 0:
            first = _const(folder, other)
            if first is None:
                return None
            continue
        aff = _affine(g, folder, other)        # a_{t-1} @ R + b_hh
        if aff is None or aff[0] != cat.input[t - 1]:
            return None
        if R is None:
            R, bh = aff[1], aff[2]
        elif not (np.array_equal(R, aff[1]) and (bh is None) == (aff[2] is None)
                  and (bh is None or np.array_equal(bh, aff[2]))):
            return None
    inp = _affine(g, folder, L)
    if inp is None or R is None:
        return None
    x, Wt, bi = inp
    H = R.shape[0]
    if R.shape != (H, H) or Wt.shape[1] != H:
        return None
    bh = np.zeros(H) if bh is None else bh
    bi = np.zeros(H) if bi is None else bi
    if bh.size != H or bi.size != H:
        return None
    # the first step's constant is h0 @ R + b_hh; only a zero initial state is re-rolled
    first = first.reshape(-1)
    if first.size not in (1, H) or not np.allclose(first, bh.reshape(-1), rtol=0,
                                                   atol=1e-7 * (1 + np.abs(bh).max())):
        return None
    dt = Wt.dtype if Wt.dtype in (np.float32, np.float64) else np.float32
    W = Wt.T[None].astype(dt)
    Rn = R.T[None].astype(dt)
    B = np.concatenate([bi.reshape(-1), bh.reshape(-1)])[None].astype(dt)
    return x, W, Rn, B, ACTS[acts[0].op_type]

