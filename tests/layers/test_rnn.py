"""The plain RNN unit alone: activations, clip, directions and weight formats, against the
float64 reference equations."""

import numpy as np
import pytest

import streamlstm as sl
from support.unit_checks import check_unit, uniform

I, H = 3, 4


def rnn(seed, D=1, **kw):
    rng = np.random.default_rng(seed)
    u = lambda *s: uniform(rng, *s, fan=H)  # noqa: E731
    return sl.RNN(u(D, H, I), u(D, H, H), Wb=u(D, H), Rb=u(D, H), **kw)


@pytest.mark.parametrize("extra", [{}, {"clip": 0.4}, {"activations": ["Relu"]},
                                   {"activations": [sl.act("LeakyRelu", 0.2)], "initial_h": np.ones((1, H))}],
                         ids=["tanh", "clip", "relu", "leaky_init"])
def test_forward_every_schedule_and_format(extra):
    check_unit(rnn(5, **extra), I)


@pytest.mark.parametrize("direction,merge", [("reverse", "concat"), ("bidirectional", "sum")])
def test_reverse_and_bidirectional(direction, merge):
    D = 2 if direction == "bidirectional" else 1
    check_unit(rnn(6, D, direction=direction, merge=merge), I)
