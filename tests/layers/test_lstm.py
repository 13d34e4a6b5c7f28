"""The LSTM unit alone: both row kinds (fused default, general), every extra, every direction
and weight format, against the float64 reference equations."""

import zlib

import numpy as np
import pytest

import streamlstm as sl
from streamlstm.kernels import layout as L
from streamlstm.kernels.kinds.lstm import K_LSTM, K_LSTM_FUSED
from support.unit_checks import FORMATS, check_unit, uniform

I, H = 3, 5


def lstm(rng, D=1, Hr=H, **kw):
    u = lambda *s: uniform(rng, *s, fan=H)  # noqa: E731
    return sl.LSTM(u(D, 4 * H, I), u(D, 4 * H, Hr), Wb=u(D, 4 * H), Rb=u(D, 4 * H), **kw)


VARIANTS = {
    "default": {},
    "peepholes_clip": {"P": True, "clip": 0.7},
    "projection": {"proj": True},
    "input_forget": {"input_forget": True},
    "activations": {"activations": [sl.act("HardSigmoid"), "Relu", sl.act("ScaledTanh", 0.8, 1.2)]},
    "learned_state": {"initial": True},
}


def build(name, D=1, **extra):
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    kw = dict(VARIANTS[name], **extra)
    Hr = 4 if kw.pop("proj", False) else H
    if Hr != H:
        kw["proj"] = uniform(rng, D, Hr, H, fan=H)
    if kw.pop("P", False):
        kw["P"] = uniform(rng, D, 3 * H, fan=H)
    if kw.pop("initial", False):
        kw["initial_h"], kw["initial_c"] = uniform(rng, D, Hr, fan=1), uniform(rng, D, H, fan=1)
    return lstm(rng, D, Hr, **kw)


@pytest.mark.parametrize("name", VARIANTS)
def test_forward_every_schedule_and_format(name):
    assert check_unit(build(name), I) == len(FORMATS)


@pytest.mark.parametrize("direction,merge", [("reverse", "concat"), ("bidirectional", "concat"),
                                             ("bidirectional", "sum"), ("bidirectional", "ave")])
def test_reverse_and_bidirectional(direction, merge):
    D = 2 if direction == "bidirectional" else 1
    check_unit(build("peepholes_clip", D, direction=direction, merge=merge), I)


def test_row_kind_is_decided_by_the_plan():
    """The default LSTM gets the fused row kind with fast activations only; anything else the
    general kind, whose extras are named fields."""
    kinds = lambda layer, **kw: sl.Model(sl.Network([layer]), **kw).plan.rows[:, L.C_KIND].tolist()  # noqa: E731
    assert kinds(build("default")) == [K_LSTM_FUSED]
    assert kinds(build("default"), dtype="float64") == [K_LSTM]
    for name in ("peepholes_clip", "projection", "input_forget", "activations"):
        assert kinds(build(name)) == [K_LSTM], name


def test_the_unit_is_frozen_and_validated_once():
    layer = build("peepholes_clip")
    with pytest.raises(AttributeError):
        layer.clip = None
    with pytest.raises(ValueError):
        layer.W[0, 0, 0] = 1.0  # read-only
    with pytest.raises(sl.NetworkError, match="peephole|P"):
        sl.LSTM(layer.W, layer.R, P=np.zeros((1, 2 * H)))


@pytest.mark.parametrize("direction", ["forward", "bidirectional"])
def test_cell_state_output(direction):
    """output="c": each direction outputs its cell state (ONNX Y_c as data)."""
    rng = np.random.default_rng(9)
    D, H, I = (2 if direction == "bidirectional" else 1), 5, 3
    layer = sl.LSTM(uniform(rng, D, 4 * H, I, fan=H), uniform(rng, D, 4 * H, H, fan=H), direction=direction,
                    output="c")
    check_unit(layer, I, formats=(("float64", "float"), ("float32", "float")))
