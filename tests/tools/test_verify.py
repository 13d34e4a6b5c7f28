"""``streamlstm verify`` compares against an independent origin: for a PyTorch state dict, the
user's own module (``--module``), whose forward() may do what no state dict records."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")

from streamlstm.tools.cli import main  # noqa: E402
from streamlstm.tools.verify import verify  # noqa: E402

from support.torch_modules import GruHead, GruSigmoidHead  # noqa: E402


@pytest.fixture(scope="module")
def gru_head_file(tmp_path_factory):
    torch.manual_seed(1)
    path = tmp_path_factory.mktemp("verify") / "gru_head.pt"
    torch.save(GruSigmoidHead().state_dict(), path)
    return path


def test_forward_sigmoid_fails_against_the_real_module(gru_head_file, capsys):
    rc = main(["verify", str(gru_head_file), "--frames", "100", "--module", "support.torch_modules:GruSigmoidHead"])
    out = capsys.readouterr().out
    assert rc == 1 and "FAILED" in out and "GruSigmoidHead.forward()" in out
    err = float(out.split("max abs error ")[1].split()[0])
    assert err > 0.1   # the imported chain ends at the Linear: the sigmoid is missing


def test_the_same_file_passes_against_a_module_without_the_sigmoid(gru_head_file, capsys):
    rc = main(["verify", str(gru_head_file), "--frames", "100", "--module", "support.torch_modules:GruHead",
               "--json"])
    report = json.loads(capsys.readouterr().out)
    assert rc == 0 and report["passed"] is True and report["error"] is None
    assert report["framework"] == "torch" and report["frames"] == 100
    assert report["errors"]["output"] <= 1e-4 and "batch first" in report["how"]


def test_module_args_build_the_users_class(tmp_path):
    torch.manual_seed(2)
    path = tmp_path / "small.pt"
    torch.save(GruHead(input_size=4, hidden_size=5, output_size=2).state_dict(), path)
    v = verify(path, frames=50, module="support.torch_modules:GruHead", module_args={"input_size": 4,
               "hidden_size": 5, "output_size": 2})
    assert v.passed and v.errors["output"] <= 1e-4
    v = verify(path, frames=50, module="support.torch_modules:GruHead", module_args=[4, 5, 2])
    assert v.passed


def test_a_module_the_weights_do_not_fit_is_bad_input(gru_head_file, capsys):
    rc = main(["verify", str(gru_head_file), "--module", "support.torch_modules:GruHead",
               "--module-args", '{"hidden_size": 16}'])
    assert rc == 2 and "does not fit GruHead" in capsys.readouterr().err


@pytest.mark.parametrize("spec, message", [("support.torch_modules", "pkg.module:Class"),
                                           ("support.no_such_module:X", "cannot import"),
                                           ("support.torch_modules:Nope", "no attribute"),
                                           ("json:JSONDecoder", "not a torch.nn.Module")])
def test_bad_module_specs(gru_head_file, capsys, spec, message):
    assert main(["verify", str(gru_head_file), "--module", spec]) == 2
    assert message in capsys.readouterr().err


def test_module_is_for_pytorch_files_only(tmp_path, capsys):
    import streamlstm as sl
    from streamlstm.tools.zoo import zoo_network

    sl.Model(zoo_network("tiny")).save(tmp_path / "tiny.npz")
    assert main(["verify", str(tmp_path / "tiny.npz"), "--module", "support.torch_modules:GruHead"]) == 2
    assert "applies to PyTorch files" in capsys.readouterr().err


def test_float64_models_run_the_module_in_float64(gru_head_file):
    v = verify(gru_head_file, frames=30, module="support.torch_modules:GruHead", dtype="float64")
    assert v.passed and v.errors["output"] <= 1e-9
