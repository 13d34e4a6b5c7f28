"""The Dense unit alone: activations, bias, weight formats, against the float64 reference."""

import numpy as np
import pytest

import streamlstm as sl
from support.unit_checks import check_unit, uniform

I, O = 6, 5


@pytest.mark.parametrize("activation", ["Identity", "Relu", "Tanh", "Softmax", sl.act("Elu", 0.7)],
                         ids=["identity", "relu", "tanh", "softmax", "elu"])
@pytest.mark.parametrize("bias", [True, False])
def test_every_schedule_and_format(activation, bias):
    rng = np.random.default_rng(2)
    layer = sl.Dense(uniform(rng, O, I, fan=I), uniform(rng, O, fan=I) if bias else None, activation)
    check_unit(layer, I)


def test_wide_output_spans_several_panels():
    rng = np.random.default_rng(3)
    check_unit(sl.Dense(uniform(rng, 70, I, fan=I), uniform(rng, 70, fan=I)), I)
