"""The ``streamlstm`` command: --version, info, convert, verify, and a smoke run of bench."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import onnx
import pytest

import streamlstm as sl
from streamlstm.tools import benchmark
from streamlstm.tools.cli import main
from streamlstm.tools.peers import Peer, StreamlstmPeer
from streamlstm.tools.zoo import zoo_network

from support.onnx_cases import Case, recurrent_model


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    model = sl.Model(zoo_network("tiny"))
    model.to_onnx(d / "tiny.onnx")
    onnx.save(recurrent_model(Case(op="GRU", I=3, H=5, seed=2, learned_init=True)), d / "gru_noports.onnx")
    return {"dir": d, "model": model, "onnx": d / "tiny.onnx", "noports": d / "gru_noports.onnx"}


@pytest.mark.parametrize("module", ["streamlstm", "streamlstm.tools.cli"])
def test_version(module):
    out = subprocess.run([sys.executable, "-m", module, "--version"], capture_output=True, text=True)
    assert out.returncode == 0
    assert out.stdout.strip() == f"streamlstm {sl.__version__}"


def test_info_onnx(files, capsys):
    assert main(["info", str(files["onnx"])]) == 0
    out = capsys.readouterr().out
    net = zoo_network("tiny")
    params = sum(a.size for l in net.layers for a in l.arrays().values())
    assert f"parameters        {params:,}" in out
    model = files["model"]
    assert model.state_size >= 64   # at least h and c of one 32-unit LSTM
    assert f"state size        {model.state_size} values ({model.state_size * 4:,} bytes)" in out
    assert f"weight bytes      {model.plan.weight_bytes:,}" in out
    for name in ("x", "h_in_0", "c_out_0", "y"):   # tensor names for a sub-graph import
        assert f"\n  {name} " in out


def test_info_reports_failed_import_but_lists_tensors(tmp_path, capsys):
    m = recurrent_model(Case(op="LSTM", I=3, H=4, seed=0))
    m.graph.node.append(onnx.helper.make_node("TopK", ["Y", "k"], ["v", "i"], name="odd"))
    m.graph.initializer.append(onnx.numpy_helper.from_array(np.array([1], np.int64), "k"))
    del m.graph.output[:]
    m.graph.output.append(onnx.helper.make_tensor_value_info("v", onnx.TensorProto.FLOAT, None))
    onnx.save(m, tmp_path / "odd.onnx")
    assert main(["info", str(tmp_path / "odd.onnx")]) == 2
    cap = capsys.readouterr()
    assert "cannot import" in cap.err and "TopK" in cap.err and "cannot import" not in cap.out
    assert cap.err.count(str(tmp_path / "odd.onnx")) == 1   # the path once
    assert "\n  Y " in cap.out   # still lists where a sub-graph import could end


def test_convert_round_trip(files, tmp_path, capsys):
    npz, onnx_out = tmp_path / "tiny.npz", tmp_path / "back.onnx"
    assert main(["convert", str(files["onnx"]), str(npz)]) == 0
    assert main(["convert", str(npz), str(onnx_out)]) == 0
    assert "wrote" in capsys.readouterr().out
    X = np.random.default_rng(3).standard_normal((40, 16)).astype(np.float32)
    want = files["model"].run(X)
    np.testing.assert_allclose(sl.load(npz).run(X), want, atol=1e-6)
    np.testing.assert_allclose(sl.load(onnx_out).run(X), want, atol=1e-6)
    assert main(["convert", str(npz), str(tmp_path / "x.txt")]) != 0


def test_verify_onnx_with_state_ports(files, capsys):
    assert main(["verify", str(files["onnx"]), "--frames", "500"]) == 0
    out = capsys.readouterr().out
    assert "frame by frame" in out and "PASSED" in out
    err = float(out.split("max abs error ")[1].split()[0])
    assert err <= 1e-5
    # the same run with a zero tolerance must fail with exit code 1
    assert main(["verify", str(files["onnx"]), "--frames", "50", "--tolerance", "0"]) == 1
    assert "FAILED" in capsys.readouterr().out


def test_verify_onnx_without_state_ports(files, capsys):
    assert main(["verify", str(files["noports"]), "--frames", "300"]) == 0
    out = capsys.readouterr().out
    assert "whole sequence" in out and "PASSED" in out


def test_verify_torch_checkpoint_needs_the_users_module(tmp_path, capsys):
    import torch
    torch.manual_seed(0)
    sd = {**{f"lstm.{k}": v for k, v in torch.nn.LSTM(6, 8, num_layers=2).state_dict().items()},
          **{f"fc.{k}": v for k, v in torch.nn.Linear(8, 3).state_dict().items()}}
    torch.save(sd, tmp_path / "m.pt")
    assert main(["verify", str(tmp_path / "m.pt"), "--frames", "200"]) == 2
    cap = capsys.readouterr()
    assert "--module" in cap.err and "PASSED" not in cap.out


def test_bench_smoke(tmp_path, capsys):
    js = tmp_path / "out" / "bench.json"
    rc = main(["bench", "--models", "tiny", "--steps", "60", "--block", "30", "--check-steps", "30",
               "--chunk", "10", "--no-cold-start", "--json", str(js), "--plot", str(js.with_suffix(".png")),
               "--no-progress"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "| tiny" in out and "**streamlstm**" in out
    assert js.exists() and js.with_suffix(".png").exists() and js.with_suffix(".png").stat().st_size > 5000
    r = json.loads(js.read_text())
    assert {"streamlstm_version", "date", "machine", "settings", "models", "checks_passed"} <= set(r)
    assert r["checks_passed"] is True
    assert r["settings"]["block_warmup"] == 5 and "each block after 5 unrecorded calls" in out
    stalls = r["machine_stalls"]
    assert stalls["per_ms"] >= 0 and 0 <= stalls["lost_share"] < 1 and "Machine stalls:" in out
    (m,) = r["models"]
    assert m["name"] == "tiny" and m["input_size"] == 16 and m["output_size"] == 4
    rows = {x["name"]: x for x in m["frameworks"]}
    ours = rows["streamlstm"]
    assert ours["status"] == "ok" and ours["n"] == 60
    assert 0 < ours["p50_us"] <= ours["p90_us"] <= ours["p99_us"] <= ours["p999_us"]
    ort_rows = [x for x in m["frameworks"] if x["framework"] == "onnxruntime"]
    assert len(ort_rows) == 4 and all(x["status"] == "ok" for x in ort_rows)
    assert all(x["max_abs_error"] <= 1e-5 for x in ort_rows)      # checked before timing
    assert m["ort_reference"] in {x["name"] for x in ort_rows if x["threads"] == 1}
    assert ours["speedup_vs_ort"] == pytest.approx(rows[m["ort_reference"]]["p50_us"] / ours["p50_us"])
    chunk = {x["name"]: x for x in m["chunk"]["frameworks"]}
    assert m["chunk"]["T"] == 10 and chunk["streamlstm"]["status"] == "ok"


def test_bench_user_onnx_file_is_what_onnxruntime_runs(files, tmp_path, capsys):
    js = tmp_path / "user.json"
    assert main(["bench", str(files["onnx"]), str(files["noports"]), "--steps", "30", "--block", "30",
                 "--check-steps", "20", "--chunk", "0", "--no-cold-start",
                 "--frameworks", "streamlstm,onnxruntime", "--json", str(js)]) == 0
    capsys.readouterr()
    with_ports, without = json.loads(js.read_text())["models"]
    assert with_ports["onnx"] == "the user's ONNX file"
    assert "no state inputs/outputs" in without["onnx"] and "Model.to_onnx()" in without["onnx"]
    for m in (with_ports, without):
        assert all(x["status"] == "ok" for x in m["frameworks"])


class _Wrong(Peer):
    """A fast framework with a wrong answer."""

    name = framework = "wrong"

    def __init__(self, O: int):
        self.y = np.zeros(O, np.float32)

    def reset(self):
        pass

    def step_fn(self):
        return lambda x: self.y + 1.0


def test_wrong_framework_is_failed_not_timed():
    model = sl.Model(zoo_network("tiny"))
    X = np.random.default_rng(0).standard_normal((20, 16)).astype(np.float32)
    ok, rows = benchmark._check([StreamlstmPeer(model), _Wrong(4)], model, X, 1e-4)
    assert [p.name for p in ok] == ["streamlstm"]
    assert rows[1]["status"] == "failed" and rows[1]["max_abs_error"] > 1e-4


class _Counting(Peer):
    """Counts its calls; each call's frame says which one it is."""

    name = framework = "counting"

    def __init__(self):
        self.calls = []

    def reset(self):
        self.calls.clear()

    def step_fn(self):
        return lambda x: self.calls.append(int(x[0]))


def test_each_block_starts_with_unrecorded_warm_up_calls():
    peers = [_Counting(), _Counting()]
    frames = [np.array([i]) for i in range(40)]  # fewer than the 50 warm-up calls of the start
    s = benchmark.Settings(steps=60, block=30, block_warmup=3)
    times = benchmark._time_steps(peers, frames, s, benchmark.Progress(1, False), "t")
    for p, t in zip(peers, times):
        assert len(p.calls) == 40 + 2 * (3 + 30) and t.shape == (60,) and np.all(t > 0)
        assert p.calls[40:43] == [(p.calls[40] + i) % 40 for i in range(3)]  # frames run on in order


def test_machine_stalls_counts_gaps_in_a_busy_loop():
    st = benchmark.machine_stalls(seconds=0.05, threshold_ns=1)  # every clock read is a "gap"
    assert st["per_ms"] > 10 and st["median_us"] > 0 and st["lost_share"] == pytest.approx(1.0)
    quiet = benchmark.machine_stalls(seconds=0.05, threshold_ns=10**9)
    assert quiet["per_ms"] == 0 and quiet["lost_share"] == 0


def test_cold_start_new_process(tmp_path):
    path = tmp_path / "tiny.npz"
    sl.Model(zoo_network("tiny")).save(path)
    c = benchmark.cold_start(str(path), runs=1)
    assert "error" not in c, c
    assert 0 < c["seconds"] < c["process_seconds"]
    assert 0 < c["numba_floor_seconds"] < c["process_seconds"]  # import numba + a cached @njit call


def test_info_json_matches_the_model(files, capsys):
    assert main(["info", "--json", str(files["onnx"])]) == 0
    info = json.loads(capsys.readouterr().out)
    model = files["model"]
    assert info["input_size"] == model.input_size and info["output_size"] == model.output_size
    assert info["state_size"] == model.state_size and info["weight_bytes"] == model.plan.weight_bytes
    assert info["parameters"] == sum(a.size for l in model.network.layers for a in l.arrays().values())
    assert [layer["kind"] for layer in info["layers"]] == ["LSTM", "Dense"]
    assert {"x", "y"} <= {t["name"] for t in info["onnx_tensors"]}


def test_info_weights_option_reaches_load(files, capsys):
    assert main(["info", "--json", "--weights", "bf16", str(files["onnx"])]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["weight_format"] == "bf16" and info["weight_bytes"] < files["model"].plan.weight_bytes


def test_an_option_the_format_does_not_take_is_a_usage_error(files, capsys):
    assert main(["info", str(files["onnx"]), "--layers", "lstm,fc"]) == 2
    err = capsys.readouterr().err
    assert "layers" in err and err.count(str(files["onnx"])) == 1 and "Traceback" not in err


def test_verify_json(files, capsys):
    assert main(["verify", "--json", str(files["onnx"]), "--frames", "50"]) == 0
    v = json.loads(capsys.readouterr().out)
    assert v["passed"] is True and v["framework"] == "onnxruntime" and v["frames"] == 50
    assert max(v["errors"].values()) <= 1e-5


def test_bench_writes_no_file_unless_asked(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["bench", "--models", "tiny", "--steps", "20", "--block", "10", "--check-steps", "10",
                 "--chunk", "0", "--no-cold-start", "--no-progress", "--frameworks", "streamlstm"]) == 0
    assert "| tiny" in capsys.readouterr().out
    assert list(tmp_path.iterdir()) == []


def test_bench_reports_code_paths_pool_table_and_best_ort_speedups(tmp_path, capsys):
    from llvmlite import binding as llvm

    js = tmp_path / "bench.json"
    rc = main(["bench", "--models", "tiny", "--steps", "20", "--block", "10", "--check-steps", "10",
               "--chunk", "10", "--pool", "32", "--no-cold-start", "--json", str(js), "--no-progress",
               "--frameworks", "streamlstm,onnxruntime"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "Code paths chosen from the host CPU" in out and "Pool: one frame for each of 32 streams" in out
    r = json.loads(js.read_text())
    host = llvm.get_host_cpu_features()
    paths = r["machine"]["code_paths"]
    assert paths["features"] == {f: bool(host.get(f, False)) for f in paths["features"]}
    assert r["settings"]["pool_streams"] == 32
    (m,) = r["models"]
    pool = m["pool"]["frameworks"]
    ours = [x for x in pool if x["framework"] == "streamlstm"]
    ort = [x for x in pool if x["framework"] == "onnxruntime"]
    exact = [x for x in ours if "dot" not in x["name"]]
    assert exact and all(x["status"] == "ok" and x["max_abs_error"] == 0 for x in exact)
    for fmt, tol in benchmark.DOT_TOLERANCES.items():
        rounded = [x for x in ours if f"weights={fmt}" in x["name"]]
        assert len(rounded) == 2 and all(x["status"] == "ok" and 0 < x["max_abs_error"] <= tol for x in rounded)
    assert len(ort) == 2 and all(x["status"] == "ok" and x["max_abs_error"] <= 1e-5 for x in ort)
    best = min(x["p50_us"] for x in ort)
    assert ours[0]["speedup_vs_best_ort"] == pytest.approx(best / ours[0]["p50_us"])
    assert ours[0]["frames_per_s"] == pytest.approx(32 / (ours[0]["p50_us"] * 1e-6))
    chunk = m["chunk"]["frameworks"]
    best = min(x["p50_us"] for x in chunk if x["framework"] == "onnxruntime")
    sl_row = next(x for x in chunk if x["name"] == "streamlstm")
    assert sl_row["speedup_vs_best_ort"] == pytest.approx(best / sl_row["p50_us"])
