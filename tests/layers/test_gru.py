"""The GRU unit alone: both row kinds (linear_before_reset 0/1), clip, activations, directions
and weight formats, against the float64 reference equations."""

import numpy as np
import pytest

import streamlstm as sl
from streamlstm.kernels import layout as L
from streamlstm.kernels.kinds.gru import K_GRU, K_GRU_LBR
from support.unit_checks import check_unit, uniform

I, H = 4, 6


def gru(seed, D=1, **kw):
    rng = np.random.default_rng(seed)
    u = lambda *s: uniform(rng, *s, fan=H)  # noqa: E731
    return sl.GRU(u(D, 3 * H, I), u(D, 3 * H, H), Wb=u(D, 3 * H), Rb=u(D, 3 * H), **kw)


@pytest.mark.parametrize("lbr", [False, True])
@pytest.mark.parametrize("extra", [{}, {"clip": 0.5}, {"activations": [sl.act("HardSigmoid"), "Softsign"]},
                                   {"initial_h": np.full((1, H), 0.3)}], ids=["plain", "clip", "acts", "init"])
def test_forward_every_schedule_and_format(lbr, extra):
    check_unit(gru(7 + lbr, linear_before_reset=lbr, **extra), I)


@pytest.mark.parametrize("direction,merge", [("reverse", "concat"), ("bidirectional", "concat"),
                                             ("bidirectional", "mul")])
def test_reverse_and_bidirectional(direction, merge):
    D = 2 if direction == "bidirectional" else 1
    check_unit(gru(3, D, direction=direction, merge=merge, linear_before_reset=True), I)


def test_linear_before_reset_is_a_row_kind():
    kinds = [sl.Model(sl.Network([gru(1, linear_before_reset=lbr)])).plan.table[1, L.C_KIND] for lbr in (0, 1)]
    assert kinds == [K_GRU, K_GRU_LBR]
