"""``load``: hand a path or an in-memory model to its format's importer and build a Model.

The format -> importer table and the sniffing live in ``streamlstm.converters.registry``.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

from .budget import load_budget, source_bytes
from .converters.registry import FORMATS, format_of, import_source
from .errors import ConversionError
from .model import Model
from .network import Network

__all__ = ["load", "import_network", "format_of", "FORMATS"]


def _checked_source(import_fn):
    """Refuse a path that is not a regular file (or a Keras model directory) before any reader
    opens it, so a FIFO, a device or a symlink to one cannot hang a load; then run the import
    under one load budget sized on the file (see ``streamlstm.budget``)."""

    @functools.wraps(import_fn)
    def checked(source: Any, *args, **kwargs):
        fmt = kwargs.get("format")
        if fmt not in (None, "network") and fmt not in FORMATS:  # the call is wrong, whatever the file
            raise ValueError(f"format: expected one of {tuple(FORMATS)}, got {fmt!r}")
        try:
            if not isinstance(source, (str, os.PathLike)):
                return import_fn(source, *args, **kwargs)
            with load_budget(str(source), _regular_source_bytes(source)):
                return import_fn(source, *args, **kwargs)
        except MemoryError:  # the budget keeps files from getting here; a huge in-memory model may
            where = str(source) if isinstance(source, (str, os.PathLike)) else f"a {type(source).__name__}"
            raise ConversionError(f"{where}: out of memory while importing") from None

    return checked


def _regular_source_bytes(source: str | os.PathLike) -> int:
    """Stored bytes of a model path, or ConversionError if it is not a regular file (or .keras dir)."""
    path = Path(source)
    try:
        if path.is_dir() and path.suffix.lower() == ".keras":
            return source_bytes(path)
        if path.is_file():
            return path.stat().st_size
        exists = path.exists()
    except OSError as e:
        raise ConversionError(f"{source}: cannot read: {e}") from None
    if exists:
        raise ConversionError(f"{source}: not a regular file (a directory, FIFO, socket or device); "
                              f"model files are read only from regular files")
    raise ConversionError(f"{source}: no such file")


@_checked_source
def import_network(source: Any, *, format: str | None = None, **options) -> Network:
    """Convert ``source`` (path or in-memory model) to a Network without planning it."""
    if format in (None, "network") and isinstance(source, Network):
        return source
    return import_source(source, format, **options)


def load(source: Any, *, format: str | None = None, dtype: str = "float32",
         fast_activations: bool | None = None, weights: str = "float", **options) -> Model:
    """Load a model from a path (.onnx .pt .pth .ckpt .bin .safetensors .keras .h5 .npz), an
    onnx.ModelProto, a torch.nn.Module or state_dict, a keras.Model, or a Network.

    ``format`` (one of ``FORMATS``) overrides what the extension or type says. ``options`` go
    to the converter (ONNX: inputs=, outputs=; PyTorch: layers=, key=, prefix=; Keras: layers=,
    config=). ``fast_activations`` (default: on for float32) selects the vectorised
    tanh/sigmoid approximations; False uses libm. ``weights`` "bf16" or "int8" stores the
    weight matrices compressed (opt-in, float32 only; faster on models whose weights do not
    fit in cache, at a small accuracy cost). "bf16dot" stores them as bf16 too and rounds
    the inputs of their products to bf16, for the CPU's bf16 dot product (AVX512_BF16,
    emulated elsewhere), for pools of many streams, at a larger accuracy cost. "int8dot"
    stores int8 codes (one scale per output) and quantises the inputs of their products to
    int8 (one scale per block of 256 inputs), for the CPU's int8 dot product (AVX512_VNNI,
    emulated elsewhere): the fastest pools, at the largest accuracy cost.
    """
    return Model(import_network(source, format=format, **options), dtype=dtype,
                 fast_activations=fast_activations, weights=weights)
