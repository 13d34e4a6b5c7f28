"""Command-line argument types and the model-loading options shared by the subcommands.

Every numeric argument goes through ``bounded_int`` / ``bounded_float``, so a value outside its
range is an argparse error (exit code 2, a one-line message) before any work or allocation.
``converter_options`` turns ``--layers``, ``--format``, ``--config``, ``--weights``,
``--constants`` and the per-format options into the keyword arguments of ``streamlstm.load``.
"""

from __future__ import annotations

import argparse
import json
import math
from typing import Any, Callable

from ..kernels.layout import WEIGHT_FORMATS as FORMAT_CODES

WEIGHT_FORMATS = tuple(FORMAT_CODES)
LOAD_FORMATS = ("onnx", "torch", "keras", "native")


def bounded_int(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: a decimal integer in [low, high]."""

    def parse(text: str) -> int:
        try:
            value = int(text.strip(), 10)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low or (high is not None and value > high):
            upper = f"{high:,}" if high is not None else "any"
            raise argparse.ArgumentTypeError(f"expected an integer from {low:,} to {upper}, got {text}")
        return value

    parse.__name__ = "integer"
    return parse


def bounded_float(low: float, high: float = math.inf) -> Callable[[str], float]:
    """An argparse type: a finite number in [low, high]."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not math.isfinite(value) or not low <= value <= high:
            raise argparse.ArgumentTypeError(f"expected a finite number from {low:g} to {high:g}, got {text}")
        return value

    parse.__name__ = "number"
    return parse


def csv(text: str) -> list[str]:
    return [t for t in (s.strip() for s in text.split(",")) if t]


def _json_value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_layers(text: str) -> list:
    """``lstm,fc`` or a JSON list (entries may be [name, type, {options}] or objects)."""
    text = text.strip()
    if text.startswith("["):
        try:
            value = json.loads(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(f"invalid JSON list: {e}") from None
        if not isinstance(value, list) or not value:
            raise argparse.ArgumentTypeError("expected a non-empty JSON list")
        return [tuple(e) if isinstance(e, list) else e for e in value]
    names = csv(text)
    if not names:
        raise argparse.ArgumentTypeError("expected comma-separated layer names, e.g. lstm,fc")
    return names


def parse_constants(text: str) -> dict:
    """``'{"sr": 16000}'`` or ``sr=16000,hop=160`` (values read as JSON when they parse)."""
    text = text.strip()
    if text.startswith("{"):
        try:
            value = json.loads(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(f"invalid JSON object: {e}") from None
        if not isinstance(value, dict):
            raise argparse.ArgumentTypeError("expected a JSON object")
        return value
    out = {}
    for item in csv(text):
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {item!r}")
        out[name.strip()] = _json_value(value.strip())
    if not out:
        raise argparse.ArgumentTypeError("expected NAME=VALUE pairs or a JSON object")
    return out


def parse_json_args(text: str) -> Any:
    """``--module-args``: a JSON object (keyword arguments) or list (positional arguments)."""
    try:
        value = json.loads(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"invalid JSON: {e}") from None
    if not isinstance(value, (dict, list)):
        raise argparse.ArgumentTypeError("expected a JSON object (keyword arguments) or list (positional)")
    return value


def loading_parser() -> argparse.ArgumentParser:
    """The options of every subcommand that loads a model (added as an argparse parent)."""
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("import options (passed to streamlstm.load)")
    g.add_argument("--format", choices=LOAD_FORMATS, help="the file's format (default: from its extension)")
    g.add_argument("--weights", choices=WEIGHT_FORMATS, default="float",
                   help="stored weight format (default float; bf16/int8 trade accuracy for bandwidth, "
                   "bf16dot/int8dot for the bf16/int8 dot products of many streams)")
    g.add_argument("--layers", type=parse_layers, metavar="SPEC",
                   help="PyTorch/Keras: the layer chain in forward order, 'lstm,fc' or a JSON list")
    g.add_argument("--config", metavar="JSON|PATH", help="Keras: the model config (JSON text or file)")
    g.add_argument("--constants", type=parse_constants, metavar="SPEC",
                   help="values the model needs at import, '{\"sr\": 16000}' or sr=16000")
    g.add_argument("--inputs", type=csv, metavar="NAMES",
                   help="ONNX: tensor names where the imported part starts (comma-separated)")
    g.add_argument("--outputs", type=csv, metavar="NAMES",
                   help="ONNX: tensor names where the imported part ends (comma-separated)")
    g.add_argument("--key", help="PyTorch: key of the state dict inside a nested checkpoint")
    g.add_argument("--prefix", help="PyTorch: keep only state-dict keys under this prefix (and strip it)")
    return p


CONVERTER_OPTIONS = ("layers", "config", "constants", "inputs", "outputs", "key", "prefix")


def converter_options(args: argparse.Namespace) -> dict:
    """The options given on the command line that go to the converter (not format/weights)."""
    return {name: getattr(args, name) for name in CONVERTER_OPTIONS if getattr(args, name, None)}


def load_options(args: argparse.Namespace) -> dict:
    """Every keyword of ``streamlstm.load`` the command line set (format and weights included)."""
    opts = converter_options(args)
    if getattr(args, "format", None):
        opts["format"] = args.format
    if getattr(args, "weights", "float") != "float":
        opts["weights"] = args.weights
    return opts
