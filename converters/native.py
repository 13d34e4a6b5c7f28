"""The native format's importer and exporter: ``.npz`` files that need none of onnx, torch or
keras (the file layout is in ``native_file.py``)."""

from __future__ import annotations

from pathlib import Path

from streamlstm.errors import ConversionError
from streamlstm.network import Network

from .native_file import read_network, write_network


def import_native(path: str | Path, **opts) -> Network:
    """The Network saved at ``path`` by ``export_native`` (or ``Network.save``)."""
    if opts:
        raise ConversionError(f"{path}: the native format takes no options, got {sorted(opts)}")
    layers, input_size, name, sources, outputs = read_network(path)
    return Network(layers, input_size=input_size, name=name, sources=sources, outputs=outputs)


def export_native(network: Network, path: str | Path) -> None:
    """Write ``network`` to ``path`` as a native ``.npz``."""
    write_network(network, path)
