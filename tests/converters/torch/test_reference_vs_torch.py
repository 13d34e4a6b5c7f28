"""Pins the reference's LSTM projection (not in ONNX) to torch.nn.LSTM(proj_size=...).

PyTorch gates are i, f, g, o; the IR's are ONNX's i, o, f, c, so rows are permuted. With a
projection, h = W_hr @ (o * tanh(c)) and R has Hr columns.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from support.reference import reference_run
from streamlstm.network import LSTM, Network

TOL = 1e-5


def _ifgo_to_iofc(w: np.ndarray, H: int) -> np.ndarray:
    i, f, g, o = (w[k * H:(k + 1) * H] for k in range(4))
    return np.concatenate([i, o, f, g])


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("init", [False, True])
def test_lstm_projection_matches_torch(bidirectional, init):
    torch.manual_seed(3 + 2 * bidirectional + init)
    I, H, Hr, T = 5, 7, 3, 23
    D = 2 if bidirectional else 1
    m = torch.nn.LSTM(I, H, proj_size=Hr, bidirectional=bidirectional).double()
    sfx = ["", "_reverse"][:D]
    p = {k: v.detach().numpy() for k, v in m.state_dict().items()}
    W = np.stack([_ifgo_to_iofc(p[f"weight_ih_l0{s}"], H) for s in sfx])
    R = np.stack([_ifgo_to_iofc(p[f"weight_hh_l0{s}"], H) for s in sfx])
    Wb = np.stack([_ifgo_to_iofc(p[f"bias_ih_l0{s}"], H) for s in sfx])
    Rb = np.stack([_ifgo_to_iofc(p[f"bias_hh_l0{s}"], H) for s in sfx])
    proj = np.stack([p[f"weight_hr_l0{s}"] for s in sfx])
    rng = np.random.default_rng(5)
    h0 = rng.normal(size=(D, Hr)) * 0.5 if init else None
    c0 = rng.normal(size=(D, H)) * 0.5 if init else None
    layer = LSTM(W=W, R=R, Wb=Wb, Rb=Rb, proj=proj, initial_h=h0, initial_c=c0,
                 direction="bidirectional" if bidirectional else "forward")
    X = rng.normal(size=(T, I))
    with torch.no_grad():
        xt = torch.from_numpy(X)[:, None, :]
        if init:
            y, (hn, cn) = m(xt, (torch.from_numpy(h0)[:, None, :], torch.from_numpy(c0)[:, None, :]))
        else:
            y, (hn, cn) = m(xt)
    Yr, st = reference_run(Network([layer]), X)
    assert Yr.shape == (T, D * Hr)
    assert np.abs(Yr - y[:, 0, :].numpy()).max() <= TOL
    assert np.abs(st[0]["h"] - hn[:, 0, :].numpy()).max() <= TOL
    assert np.abs(st[0]["c"] - cn[:, 0, :].numpy()).max() <= TOL
