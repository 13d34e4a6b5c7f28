"""Conv1d within a frame and TimeConv1d over time, alone, in every schedule and weight format,
against the float64 reference (direct sums over the padded input)."""

import numpy as np
import pytest

import streamlstm as sl
from streamlstm.errors import NetworkError
from support.reference import reference_run
from support.unit_checks import check_unit, uniform


@pytest.mark.parametrize("stride,dilation,padding,mode,groups", [
    (1, 1, (1, 1), "zeros", 1),
    (2, 1, (1, 1), "zeros", 1),
    (1, 2, (2, 0), "zeros", 2),
    (3, 1, (2, 3), "reflect", 1),
    (1, 1, (1, 2), "edge", 4),
    (128, 1, (0, 0), "zeros", 1),
], ids=["same", "stride2", "dilated-groups", "reflect", "edge-depthwise", "stft-like"])
def test_conv1d_in_a_frame(stride, dilation, padding, mode, groups):
    rng = np.random.default_rng(stride + dilation)
    Ci, Co, k = 4, 8, 3
    L = 9 if stride < 100 else 384
    if stride == 128:
        k = 256
    layer = sl.Conv1d(uniform(rng, Co, Ci // groups, k, fan=Ci * k), uniform(rng, Co, fan=Ci), length=L,
                      stride=stride, dilation=dilation, padding=padding, pad_mode=mode, groups=groups,
                      activation="Relu")
    check_unit(layer, Ci * L)


@pytest.mark.parametrize("k,dilation,groups", [(3, 1, 1), (2, 3, 1), (1, 1, 1), (3, 2, 3)])
def test_causal_time_conv_streams(k, dilation, groups):
    rng = np.random.default_rng(k)
    Ci, Co = 3, 6
    layer = sl.TimeConv1d(uniform(rng, Co, Ci // groups, k, fan=Ci * k), uniform(rng, Co, fan=Ci),
                          dilation=dilation, groups=groups, activation="Tanh")
    assert layer.streamable
    check_unit(layer, Ci, frames=11)


def test_time_conv_history_is_state():
    rng = np.random.default_rng(5)
    layer = sl.TimeConv1d(uniform(rng, 4, 2, 3, fan=6), dilation=2)
    model = sl.Model(sl.Network([layer]), "float64")
    X = rng.normal(size=(9, 2))
    s = model.session()
    s.run(X[:4])
    saved = s.get_state()
    assert saved.size == 4 * 2
    first = s.run(X[4:])
    s.set_state(saved)
    np.testing.assert_array_equal(s.run(X[4:]), first)
    s.reset()
    np.testing.assert_allclose(np.concatenate([s.run(X[:4]), s.run(X[4:])]), reference_run(model.network, X)[0],
                               atol=1e-12)


def test_non_causal_time_conv_runs_whole_sequences_only():
    rng = np.random.default_rng(6)
    layer = sl.TimeConv1d(uniform(rng, 4, 2, 3, fan=6), padding=(1, 1))
    model = sl.Model(sl.Network([layer]), "float64")
    X = rng.normal(size=(7, 2))
    np.testing.assert_allclose(model.run(X), reference_run(model.network, X)[0], atol=1e-12)
    assert not model.streamable
    with pytest.raises(ValueError, match="whole sequences"):
        model.session().step(X[0])


def test_bad_convolutions_are_refused():
    W = np.ones((4, 2, 3))
    with pytest.raises(NetworkError, match="padding"):
        sl.TimeConv1d(W, padding=(1, 0))
    with pytest.raises(NetworkError, match="shorter than the window"):
        sl.Conv1d(W, length=2)
    with pytest.raises(NetworkError, match="groups"):
        sl.Conv1d(W, length=5, groups=3)
    with pytest.raises(NetworkError, match="reflect"):
        sl.Conv1d(W, length=3, padding=(3, 0), pad_mode="reflect")
