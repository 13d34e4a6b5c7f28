"""Ahead-of-time compile (``sl.compile``, ``streamlstm compile``) and the compile notices: after
it, a new process of another model compiles nothing on any entry point; real compiles are
announced on stderr and the ``streamlstm`` logger, cache loads are silent."""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import numpy as np
import pytest

import streamlstm as sl
from streamlstm.aot import COVERAGE
from streamlstm.kernels.layout import FMT_FLOAT
from streamlstm.kernels.rows import ALL_GROUPS, ROW_KINDS, kind_set
from streamlstm.network import GRU, LSTM, Dense, Elementwise, LayerNorm, Network
from support.compile_cache import COMPILE_NOTICE, USE_ALL, env_with_cache, python, warm_cache
from support.reference import reference_run


def _other_network() -> Network:
    """Not the network ``sl.compile`` runs: another size and layer order (GRU first, projection-free)."""
    rng = np.random.default_rng(11)
    I, H = 5, 24
    return Network([
        GRU(W=rng.uniform(-.4, .4, (1, 3 * H, I)), R=rng.uniform(-.4, .4, (1, 3 * H, H))),
        LSTM(W=rng.uniform(-.4, .4, (1, 4 * H, H)), R=rng.uniform(-.4, .4, (1, 4 * H, H))),
        Dense(W=rng.uniform(-.4, .4, (3, H)), activation="Tanh"),
    ])


def _other_front_end() -> Network:
    """A front end ``sl.compile`` does not run (a scale and a LayerNorm) before a GRU."""
    rng = np.random.default_rng(12)
    I, H = 6, 10
    return Network([
        Elementwise("mul", rng.uniform(0.5, 1.5, I)),
        LayerNorm(rng.uniform(0.5, 1.5, I), rng.normal(size=I)),
        GRU(W=rng.uniform(-.4, .4, (1, 3 * H, I)), R=rng.uniform(-.4, .4, (1, 3 * H, H))),
        Dense(W=rng.uniform(-.4, .4, (2, H))),
    ], input_size=I)


def test_the_compile_covers_every_kind_set():
    """Every set of kinds a plan can ask for (the core group with any of the others) is one of
    the coverage networks' (``rows.kind_set``; for float weights, the default ``sl.compile``)."""
    others = sorted(ALL_GROUPS - {"core"})
    reachable = {kind_set([k.id for k in ROW_KINDS if k.group in {"core", *chosen}]).with_formats([FMT_FLOAT])
                 for n in range(len(others) + 1) for chosen in itertools.combinations(others, n)}
    assert {sl.Model(network()).plan.kinds for network in COVERAGE} == reachable
    assert sl.Model(_other_network()).plan.kinds.tag == "core__float"
    assert sl.Model(_other_front_end()).plan.kinds.tag == "all__float"


@pytest.mark.parametrize("other", [_other_network, _other_front_end], ids=["core", "front-end"])
def test_after_compile_a_new_process_of_another_model_compiles_nothing(tmp_path_factory, tmp_path: Path, other):
    cache = warm_cache(tmp_path_factory)
    net = other()
    sl.Model(net).save(tmp_path / "m.npz")
    X = np.random.default_rng(2).standard_normal((12, net.input_size))
    np.save(tmp_path / "X.npy", X)
    out = python(USE_ALL, tmp_path / "m.npz", tmp_path / "X.npy", tmp_path / "Y.npz", env=env_with_cache(cache))
    assert COMPILE_NOTICE not in out.stderr, out.stderr
    expect, _ = reference_run(net, X)
    got = np.load(tmp_path / "Y.npz")
    for name in ("run", "step1", "step2", "pool", "pool1"):
        np.testing.assert_allclose(got[name], expect, atol=2e-5, err_msg=name)


def test_compile_notices_start_and_end_on_stderr_and_the_logger(tmp_path: Path):
    """A first use with an empty cache announces the compile once it starts and when it ends,
    as log records on 'streamlstm' and as lines on stderr; the next process loads silently."""
    code = ("import logging, sys, numpy as np, streamlstm as sl\n"
            "records = []\n"
            "h = logging.Handler(); h.emit = lambda r: records.append(r.getMessage())\n"
            "logging.getLogger('streamlstm').addHandler(h); logging.getLogger('streamlstm').setLevel('INFO')\n"
            "m = sl.Model(sl.Network([sl.Dense(W=np.ones((2, 3)))]), dtype='float64')\n"
            "y = m.run(np.ones((1, 3)))\n"
            "assert np.allclose(y, 3.0), y\n"
            "print('\\n'.join(records))\n")
    first = python(code, env=env_with_cache(tmp_path / "cache"))
    lines = [l for l in first.stderr.splitlines() if l.startswith("streamlstm: compil")]
    assert len(lines) == 2, first.stderr
    assert lines[0].startswith("streamlstm: compiling float64 kernels for Model.run (first use only, ~")
    assert lines[1].startswith("streamlstm: compiled float64 kernels for Model.run in ") and lines[1].endswith(" s")
    assert first.stdout.splitlines() == [l.removeprefix("streamlstm: ") for l in lines]
    second = python(code, env=env_with_cache(tmp_path / "cache"))
    assert COMPILE_NOTICE not in second.stderr and second.stdout.strip() == "", (second.stderr, second.stdout)
    quiet = python(code, env=env_with_cache(tmp_path / "other", STREAMLSTM_QUIET="1"))
    assert "streamlstm:" not in quiet.stderr and len(quiet.stdout.splitlines()) == 2


def test_the_cli_compiles_into_numba_cache_dir_and_reports_it(tmp_path_factory):
    cache = warm_cache(tmp_path_factory)
    out = python("import sys; from streamlstm.tools.cli import main; sys.exit(main(['compile', '--dtype', 'float32']))",
                 env=env_with_cache(cache))
    assert COMPILE_NOTICE not in out.stderr, out.stderr  # already built: loads only
    assert out.stdout.startswith("kernels for float32/float ready in ") and str(cache) in out.stdout


@pytest.mark.parametrize("kwargs, message", [
    (dict(dtype="float16"), "dtype: expected some of float32, float64, got 'float16'"),
    (dict(weights="int4"), "weights: expected some of float, bf16, int8, bf16dot, int8dot, got 'int4'"),
    (dict(dtype=[]), "dtype: expected some of"),
    (dict(dtype="float64", weights="bf16"), "need dtype='float32'"),
])
def test_compile_refuses_unknown_dtypes_and_formats(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("'", "'")):
        sl.compile(**kwargs)


def test_the_cli_refuses_an_unknown_dtype_with_exit_code_2(capsys):
    from streamlstm.tools.cli import main

    with pytest.raises(SystemExit) as e:
        main(["compile", "--dtype", "float16"])
    assert e.value.code == 2 and "invalid choice: 'float16'" in capsys.readouterr().err
