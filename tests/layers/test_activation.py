"""The Activation unit alone: every activation in its exact and fast forms, against the float64
reference."""

import pytest

import streamlstm as sl
from streamlstm.layers.base import LAYER_ACTIVATIONS
from support.unit_checks import check_unit


@pytest.mark.parametrize("name", sorted(LAYER_ACTIVATIONS))
def test_every_activation_every_schedule(name):
    check_unit(sl.Activation(name), 6, formats=(("float64", "float"), ("float32", "float")))


def test_parameters_reach_the_kernel():
    check_unit(sl.Activation(sl.act("Affine", -1.5, 0.25)), 4, formats=(("float64", "float"),))
