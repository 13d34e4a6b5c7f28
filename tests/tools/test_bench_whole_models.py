"""The bench's whole-model rows: the zoo CRNN and tagger against onnxruntime running their
export, the Silero VAD against onnxruntime running the package's own file (state fed back,
``sr`` fed each call); without the package the VAD row is left out with its reason."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from streamlstm.tools import benchmark


def test_whole_model_rows_check_against_onnxruntime(capsys):
    targets = benchmark.zoo_targets(["crnn", "tagger", benchmark.SILERO])
    assert [t.name for t in targets] == ["crnn", "tagger", benchmark.SILERO]
    s = benchmark.Settings(steps=40, block=20, block_warmup=2, check_steps=30, chunk=0, cold_start=False,
                           frameworks=("onnxruntime",))
    result = benchmark.run_benchmark(targets, s)
    assert result["checks_passed"]
    for m in result["models"]:
        ort_rows = [r for r in m["frameworks"] if r["framework"] == "onnxruntime"]
        assert ort_rows and all(r["status"] == "ok" for r in ort_rows), m["frameworks"]
        assert m["ort_reference"] is not None
    assert "silero_vad_16k_op15.onnx" in result["models"][2]["onnx"]


def test_tagger_frames_are_token_ids():
    t = benchmark.zoo_target("tagger")
    X = benchmark.frames_for(t.model, np.random.default_rng(0), 50)
    assert X.shape == (50, 1) and X.min() >= 0 and X.max() < 5000 and (X == X.round()).all()


def test_vad_row_is_skipped_with_its_reason_without_the_package(monkeypatch, capsys):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "silero_vad" else real(n, *a))
    assert [t.name for t in benchmark.zoo_targets(["tiny", benchmark.SILERO])] == ["tiny"]
    assert "skipping silero-vad: the silero-vad package is not installed" in capsys.readouterr().err


def test_unknown_zoo_name_is_refused():
    with pytest.raises(ValueError, match="unknown zoo model"):
        benchmark.zoo_targets(["nope"])
