"""Row kinds: how modules declare them, the interpreter written from them, and the kind sets
that keep a recurrent model from compiling the front-end kinds."""

from __future__ import annotations

import numpy as np
import pytest
from numba import njit

import streamlstm as sl
from streamlstm.kernels import engine, rows, streams
from streamlstm.kernels.kinds import RowKind
from streamlstm.kernels.kinds.conv import K_CONV, K_TCONV
from streamlstm.kernels.kinds.dense import dense_rows
from streamlstm.kernels.kinds.lstm import K_LSTM, K_LSTM_FUSED
from streamlstm.kernels.kindset import ALL_FORMATS, KindSet, entry_for
from streamlstm.kernels.layout import C_WX, FMT_FLOAT, M_COLS, M_FMT, M_OFF, M_ROWS, M_SCALES, WEIGHT_FORMATS
from streamlstm.kernels.stored import columns_acc
from support.unit_checks import uniform


def _lstm_model(dtype="float32"):
    rng = np.random.default_rng(0)
    lstm = sl.LSTM(uniform(rng, 1, 16, 3, fan=4), uniform(rng, 1, 16, 4, fan=4))
    return sl.Model(sl.Network([lstm, sl.Dense(uniform(rng, 2, 4, fan=4))]), dtype)


def test_every_kind_has_one_id_and_every_module_declares_its_kinds():
    ids = [k.id for k in rows.ROW_KINDS]
    assert len(ids) == len(set(ids)) and ids == sorted(ids)
    names = {k.name for k in rows.ROW_KINDS}
    assert {"LSTM", "LSTM (fused)", "GRU", "RNN", "Dense", "Activation", "Conv1d", "TimeConv1d",
            "Embedding", "LayerNorm", "Rearrange"} <= names


def test_the_dispatch_is_written_from_the_declarations():
    src = rows.GENERATED_SOURCE
    last_recurrent = [k for k in rows.ROW_KINDS if k.stage == "recurrent"][-1]  # the chain's else branch
    for k in rows.ROW_KINDS:
        assert f"# {k.name}" in src
        if k is not last_recurrent:
            assert f"kind == {k.id}:" in src, k.name
    assert "k14_pool(kinds, w, row, state, S, slots, src, dst, cols, Zflat)" in src  # the pool form of TimeConv1d


def test_a_row_kind_names_only_values_the_interpreter_has():
    with pytest.raises(ValueError, match="unknown interpreter values"):
        RowKind(99, "bad", dense_rows, args=("w", "row", "weights"))
    with pytest.raises(ValueError, match="stage"):
        RowKind(99, "bad", dense_rows, "later")
    with pytest.raises(ValueError, match="go together"):
        RowKind(99, "bad", dense_rows, args=("w",), pool_args=("w",))


def test_a_recurrent_model_compiles_only_the_core_kinds():
    model = _lstm_model()
    kinds = model.plan.kinds
    assert kinds.tag == "core__float" and K_LSTM_FUSED in kinds and K_LSTM in kinds
    assert kinds.formats == (FMT_FLOAT,)
    assert K_CONV not in kinds and K_TCONV not in kinds
    source, _ = rows.interpreter_source(tuple(k for k in rows.ROW_KINDS if k.id in kinds.ids))
    assert "Conv1d" not in source and "LSTM (fused)" in source
    conv = sl.Network([sl.Conv1d(np.ones((2, 1, 3)), length=4, padding=(1, 1)), sl.Dense(np.ones((1, 2 * 4)))])
    assert sl.Model(conv, "float32").plan.kinds == rows.ALL_KINDS.with_formats([FMT_FLOAT])


def test_entry_points_for_a_kind_set_are_copies_under_their_own_names():
    core = _lstm_model().plan.kinds
    assert entry_for(engine.advance, rows.ALL_KINDS) is engine.advance
    for fn in (engine.advance, engine.advance_at, engine.advance_shared, streams.pool_advance, streams.pool_compute):
        copy = entry_for(fn, core)
        assert copy is entry_for(fn, core) and copy is not fn
        assert copy.py_func.__qualname__ == f"{fn.py_func.__qualname__}__core__float"
        assert copy.py_func.__globals__["KINDS"] == core and fn.py_func.__globals__["KINDS"] == rows.ALL_KINDS
        assert copy.targetoptions.get("nogil") is True


def test_a_core_model_agrees_with_the_interpreter_of_every_kind():
    """The same plan through the core interpreter (what the Model uses) and through the
    interpreter of every kind (the module's own entry point) gives the same bits."""
    model = _lstm_model("float64")
    X = np.random.default_rng(1).normal(size=(7, 3))
    p = model.plan
    outputs = []
    for fn in (engine.advance, entry_for(engine.advance, p.kinds)):
        state, Y = p.initial_state.copy(), np.zeros(7 * 2)
        assert fn(p.weights, p.table, state, np.zeros(p.work_size(7)), X.reshape(-1), Y) == 0
        outputs.append(Y.reshape(7, 2))
    np.testing.assert_array_equal(outputs[0], outputs[1])
    np.testing.assert_array_equal(outputs[1], model.run(X))


def test_kind_sets_compare_by_ids_and_formats():
    assert KindSet([3, 1, 1], "a") == KindSet([1, 3], "b") and hash(KindSet([1, 3], "x")) == hash(KindSet([3, 1], "y"))
    assert "core" in repr(rows.kind_set([K_LSTM]))
    assert KindSet([1], "a") != KindSet([1], "a", formats=[FMT_FLOAT]) == KindSet([1], "b").with_formats([FMT_FLOAT])
    assert KindSet([1], "a").with_formats(ALL_FORMATS).tag == "a"
    with pytest.raises(ValueError, match="weight formats"):
        KindSet([1], "a", formats=[99])


@njit
def _columns(kinds, w, m, x, y):
    columns_acc(kinds, w, m, x, y, 0, -1)


@pytest.mark.parametrize("weights", ["bf16", "int8"])
def test_a_plan_compiles_the_products_of_its_weight_format_alone(weights):
    """A plan's kernels are compiled for its one weight format: the product of the stored
    matrix through that set agrees bit for bit with the product compiled for every format
    (the module's own set), and through a set of another format it adds nothing."""
    p = _lstm_model().plan
    assert p.kinds.formats == (WEIGHT_FORMATS["float"],)
    p = sl.Model(_lstm_model().network, "float32", weights=weights).plan
    own = p.kinds
    assert own.formats == (WEIGHT_FORMATS[weights],) and own.tag == f"core__{weights}"
    row = p.rows[0]
    m = tuple(int(row[C_WX + f]) for f in (M_OFF, M_ROWS, M_COLS, M_FMT, M_SCALES))
    x = np.random.default_rng(3).normal(size=m[1]).astype(np.float32)
    ys = {}
    for name, kinds in (("own", own), ("every", rows.ALL_KINDS), ("other", own.with_formats([FMT_FLOAT]))):
        ys[name] = np.zeros(m[2], np.float32)
        _columns(kinds, p.weights, m, x, ys[name])
    assert np.abs(ys["own"]).max() > 0
    np.testing.assert_array_equal(ys["own"], ys["every"])
    np.testing.assert_array_equal(ys["other"], 0)
