"""The format -> importer table behind ``streamlstm.load``, and the one place a source's format
is told (by file extension and content, or by the type of an in-memory model).

Adding a format = one ``Format`` entry here naming its extensions and its importer, a function
``importer(source, **options) -> Network`` that is imported only when that format is used (so
each format's optional dependencies stay optional).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from streamlstm.errors import ConversionError
from streamlstm.network import Network

from .safetensors import is_safetensors


@dataclass(frozen=True)
class Format:
    """A file format: its extensions and its importer ``(source, **options) -> Network``, which
    imports the format's modules (and optional dependencies) only when it is called."""

    name: str
    extensions: tuple[str, ...]
    importer: Callable[..., Network]


FORMATS: dict[str, Format] = {}


def register(fmt: Format) -> None:
    """Add (or replace) a format in the table."""
    FORMATS[fmt.name] = fmt


def format_of(source: Any, format: str | None = None) -> str:
    """The format of a path or an in-memory model: ``format`` when given (a torch file is then
    still told apart from a safetensors one), else told from the extension and the content, or
    from the object's type. ``ConversionError`` when it cannot tell."""
    if format is not None and format not in FORMATS:
        raise ValueError(f"format: expected one of {tuple(FORMATS)}, got {format!r}")
    is_path = isinstance(source, (str, os.PathLike))
    fmt = format or (_format_of_path(source) if is_path else _format_of_object(source))
    if fmt == "torch" and is_path and is_safetensors(source):
        return "safetensors"
    return fmt


def _format_of_path(source: str | os.PathLike) -> str:
    ext = Path(source).suffix.lower()
    fmt = next((f.name for f in FORMATS.values() if ext in f.extensions), None)
    if fmt is None:
        raise ConversionError(f"{source}: unknown file extension {ext!r}; pass format= one of {tuple(FORMATS)}")
    return fmt


# In-memory models: the top-level package of the object's class (or a base class) -> format.
_OBJECT_ROOTS = {"onnx": "onnx", "torch": "torch", "keras": "keras"}


def _format_of_object(source: Any) -> str:
    for cls in type(source).__mro__:
        root = (cls.__module__ or "").split(".")[0]
        if root in _OBJECT_ROOTS:
            return _OBJECT_ROOTS[root]
    if hasattr(source, "keys") and hasattr(source, "__getitem__"):
        return "torch"  # a state dict
    raise ConversionError(f"cannot tell the format of a {type(source).__name__}; pass format= one of "
                          f"{tuple(FORMATS)}")


def import_source(source: Any, format: str | None = None, **options) -> Network:
    """Convert ``source`` with the importer of its format (``format`` or told from the source)."""
    return FORMATS[format_of(source, format)].importer(source, **options)


# ------------------------------------------------------------------ the table's importers
def _onnx(source: Any, **options) -> Network:
    from .onnx import import_onnx
    return import_onnx(source, **options)


def _torch(source: Any, **options) -> Network:
    """A torch.save file (``format_of`` told it is not safetensors), a module or a state dict."""
    from .torch.importer import import_checkpoint, import_torch
    if isinstance(source, (str, os.PathLike)):
        return import_checkpoint(source, safetensors=False, **options)
    return import_torch(source, **options)


def _safetensors(source: str | os.PathLike, **options) -> Network:
    """A state dict in a ``.safetensors`` file, with PyTorch's names."""
    from .torch.importer import import_checkpoint
    return import_checkpoint(source, safetensors=True, **options)


def _keras(source: Any, **options) -> Network:
    from .keras import import_keras
    return import_keras(source, **options)


def _native(source: str | os.PathLike, **options) -> Network:
    """A ``.npz`` written by ``Network.save``."""
    if options:
        raise TypeError(f"native .npz files take no options, got {sorted(options)}")
    from .native import import_native

    return import_native(source)


for _fmt in (
    Format("onnx", (".onnx",), _onnx),
    Format("torch", (".pt", ".pth", ".ckpt", ".bin"), _torch),
    Format("safetensors", (".safetensors",), _safetensors),
    Format("keras", (".keras", ".h5", ".hdf5"), _keras),
    Format("native", (".npz",), _native),
):
    register(_fmt)
