"""The command line refuses bad numbers and bad options with exit code 2 and one line on stderr,
before any work: nothing here compiles a kernel or allocates for the asked size."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from streamlstm.tools.arguments import bounded_float, bounded_int, load_options, loading_parser, parse_constants, \
    parse_layers
from streamlstm.tools.cli import build_parser, main

REFUSED = [
    ["verify", "m.onnx", "--frames", str(10**12)],
    ["verify", "m.onnx", "--frames", "-5"],
    ["verify", "m.onnx", "--frames", "0"],
    ["verify", "m.onnx", "--frames", "10**12"],
    ["verify", "m.onnx", "--tolerance", "nan"],
    ["verify", "m.onnx", "--tolerance", "-1"],
    ["verify", "m.onnx", "--seed", "-1"],
    ["bench", "--steps", str(10**18)],
    ["bench", "--steps", "0"],
    ["bench", "--block", "0"],
    ["bench", "--chunk", "-1"],
    ["bench", "--check-steps", "-5"],
    ["bench", "--threads", "0"],
    ["bench", "--block-warmup", "-1"],
    ["bench", "--weights", "int4"],
    ["info", "m.onnx", "--constants", "sr"],
    ["info", "m.onnx", "--constants", "{not json"],
    ["info", "m.onnx", "--layers", "[1, 2"],
    ["info", "m.onnx", "--format", "tflite"],
    ["verify", "m.pt", "--module-args", "3"],
]


@pytest.mark.parametrize("argv", REFUSED, ids=[" ".join(a[2:] if a[0] != "bench" else a[1:]) for a in REFUSED])
def test_bad_numbers_and_options_are_usage_errors(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "error: argument" in err


def test_bench_unknown_zoo_model_is_a_usage_error(capsys):
    assert main(["bench", "--models", "tiny,huge"]) == 2
    assert "huge" in capsys.readouterr().err


def test_missing_file_is_bad_input_on_stderr_with_the_path_once(tmp_path, capsys):
    path = tmp_path / "absent.onnx"
    assert main(["info", str(path)]) == 2
    cap = capsys.readouterr()
    assert cap.out == "" and cap.err.count(str(path)) == 1


def test_verify_module_args_without_module(capsys):
    assert main(["verify", "m.onnx", "--module-args", "{}"]) == 2
    assert "--module" in capsys.readouterr().err


def test_bounded_types_accept_their_range():
    assert bounded_int(0, 10)("10") == 10 and bounded_int(1)(" 7 ") == 7
    assert bounded_float(0.0)("1e-6") == 1e-6
    for bad in ("11", "-1", "1.5", ""):
        with pytest.raises(argparse.ArgumentTypeError):
            bounded_int(0, 10)(bad)


def test_layers_and_constants_parse_to_converter_options():
    assert parse_layers("lstm, fc") == ["lstm", "fc"]
    assert parse_layers('[["rnn", "GRU"], "head"]') == [("rnn", "GRU"), "head"]
    assert parse_constants('{"sr": 16000}') == {"sr": 16000}
    assert parse_constants("sr=16000,name=mel,scale=0.5") == {"sr": 16000, "name": "mel", "scale": 0.5}
    args = loading_parser().parse_args(["--layers", "gru,fc", "--format", "torch", "--weights", "bf16",
                                        "--constants", "sr=8000", "--config", "{}", "--key", "model"])
    assert load_options(args) == {"layers": ["gru", "fc"], "format": "torch", "weights": "bf16",
                                  "constants": {"sr": 8000}, "config": "{}", "key": "model"}
    assert load_options(loading_parser().parse_args([])) == {}


def test_every_model_loading_subcommand_takes_the_import_options():
    parser = build_parser()
    for argv in (["info", "m"], ["verify", "m"], ["convert", "a", "b.npz"], ["bench", "m"]):
        args = parser.parse_args([*argv, "--layers", "a,b", "--format", "torch", "--weights", "int8",
                                  "--config", "c.json", "--constants", "sr=1"])
        assert args.layers == ["a", "b"] and args.format == "torch" and args.weights == "int8"


@pytest.mark.parametrize("argv", [["--help"], ["info", "--help"], ["info", "absent.onnx"]])
def test_no_traceback_when_stdout_is_closed(argv):
    # as in `streamlstm ... | head`: the reader has gone before the command writes
    proc = subprocess.Popen([sys.executable, "-m", "streamlstm", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait() in (0, 1, 2)
    assert "Traceback" not in err and "BrokenPipe" not in err


def test_missing_optional_dependency_is_one_line_naming_it(tmp_path, monkeypatch, capsys):
    path = tmp_path / "m.h5"
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(64))
    from streamlstm.converters.keras import files as keras_files

    monkeypatch.setitem(sys.modules, "h5py", None)   # as if h5py were not installed,
    monkeypatch.setattr(keras_files, "h5py", None)   # also for a reader imported by an earlier test
    assert main(["info", str(path)]) in (1, 2)   # 2 once the converter itself reports it as bad input
    err = capsys.readouterr().err
    assert "h5py" in err and "pip install" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_a_compile_notice_shows_once_while_the_cli_logs_to_stderr(capsys, monkeypatch):
    from streamlstm.kernels.cache import notice
    from streamlstm.tools import cli

    monkeypatch.delenv("STREAMLSTM_QUIET", raising=False)
    handler, level = cli._configure_logging(quiet=False)
    try:
        notice("compiling float32 kernels for Session.step (first use only, ~1 s)")
        cli.log.info("an ordinary record")
    finally:
        cli.log.removeHandler(handler)
        cli.log.setLevel(level)
    err = capsys.readouterr().err
    assert err.count("compiling float32 kernels") == 1 and "an ordinary record" in err, err
