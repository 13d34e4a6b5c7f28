"""Optional dependencies of the converters: import one, or say exactly what to install.

The core install (numba, numpy, onnx) reads ONNX, PyTorch and safetensors files. Keras files need
h5py; rebuilding torch modules needs torch. A missing one raises ``MissingDependency``, which is
both a ``ConversionError`` and an ``ImportError``, with the pip command in its message.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from streamlstm.errors import ConversionError

# module -> (its pip name, the streamlstm extra that installs it)
EXTRAS = {
    "h5py": ("h5py", "h5"),
    "torch": ("torch", "torch"),
    "keras": ("keras", "keras"),
}


class MissingDependency(ConversionError, ImportError):
    """An optional package a converter needs is not installed; the message says how to install it."""


def install_hint(module: str) -> str:
    """The pip commands that install ``module``: the package alone, or the streamlstm extra."""
    package, extra = EXTRAS.get(module, (module, None))
    hint = f"pip install {package}"
    return f'{hint} (or pip install "streamlstm[{extra}]")' if extra else hint


def missing(module: str, needed_for: str) -> MissingDependency:
    """The error for ``needed_for`` when ``module`` cannot be imported."""
    return MissingDependency(f"{needed_for} needs the {module!r} package, which is not installed: "
                             f"{install_hint(module)}")


def require(module: str, needed_for: str) -> ModuleType:
    """Import ``module`` or raise ``MissingDependency`` naming what to install."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise missing(module, needed_for) from None
