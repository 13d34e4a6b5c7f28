"""The native ``.npz`` file: a JSON config plus float64 arrays, no pickle.

Layout: member ``__config__`` holds ``{"format": "streamlstm-network", "version": 1,
"input_size", "name", "layers": [{"kind", <the unit's config()>}, ...], "sources"?}``
(``sources`` only for a graph that is not a chain, ``outputs`` only for several outputs) as UTF-8 bytes;
member ``layer<i>.<field>`` holds array field ``field`` of layer i (which fields are arrays is
each unit's ``array_fields``). Reading refuses object arrays, zip bombs and arrays larger than
their member.

This module knows the layer units but not ``Network`` (``network.py`` uses it for
``Network.save``/``load``, ``native.py`` for the importer registry), so no import cycle forms.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np

from streamlstm.budget import charge_json, load_budget
from streamlstm.errors import ConversionError, NetworkError
from streamlstm.layers import LAYER_KINDS
from streamlstm.safezip import check_member

FORMAT = "streamlstm-network"


def write_network(network, path: str | Path) -> None:
    """Write ``network`` (a ``Network``) to ``path``."""
    arrays, config = {}, []
    for i, layer in enumerate(network.layers):
        config.append({"kind": layer.kind, **layer.config()})
        for f, v in layer.arrays().items():
            arrays[f"layer{i}.{f}"] = v
    meta = {"format": FORMAT, "version": 1, "input_size": network.input_size,
            "name": network.name, "layers": config}
    if network.sources is not None:
        meta["sources"] = [list(s) for s in network.sources]
    if network.outputs is not None:
        meta["outputs"] = list(network.outputs)
    arrays["__config__"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)


def read_network(path: str | Path) -> tuple[list, int, str, list | None, list | None]:
    """(layers, input_size, name, sources, outputs) of the native file ``path``; NetworkError if it is malformed.

    A path that is not a regular file is refused before it is opened (a FIFO would hang); the
    read runs under the active load budget, or one of its own when called directly."""
    if not Path(path).is_file():
        raise NetworkError(f"{path}: not a regular file; model files are read only from regular files")
    with load_budget(str(path), Path(path).stat().st_size):
        return _read_network(path)


def _read_network(path: str | Path) -> tuple[list, int, str, list | None, list | None]:
    try:
        arrays = _read_npz(path)
        if "__config__" not in arrays:
            raise NetworkError(f"{path}: not a streamlstm network file (no __config__)")
        raw = bytes(arrays.pop("__config__"))
        charge_json(len(raw), "the config")
        meta = json.loads(raw.decode())
        if not isinstance(meta, dict) or not isinstance(meta.get("layers"), list):
            raise NetworkError(f"{path}: malformed config")
    except (NetworkError, ConversionError):
        raise
    except Exception as e:  # zip errors, bad JSON, truncated arrays
        raise NetworkError(f"{path}: cannot read native network file: {e}") from None
    if meta.get("format") != FORMAT:
        raise NetworkError(f"{path}: unknown format {meta.get('format')!r}")
    layers = [_layer(path, i, cfg, arrays) for i, cfg in enumerate(meta["layers"])]
    input_size = meta.get("input_size")
    if not isinstance(input_size, int) or isinstance(input_size, bool):
        raise NetworkError(f"{path}: input_size must be an integer, got {input_size!r}")
    sources = meta.get("sources")
    if sources is not None and not (isinstance(sources, list) and len(sources) == len(layers)
                                    and all(isinstance(e, list) and len(e) <= 64 for e in sources)):
        raise NetworkError(f"{path}: sources must be a list of index lists, one per layer")
    outputs = meta.get("outputs")
    if outputs is not None and not (isinstance(outputs, list) and len(outputs) <= 1024):
        raise NetworkError(f"{path}: outputs must be a list of output widths")
    return layers, input_size, str(meta.get("name", "")), sources, outputs


def _layer(path, i: int, cfg, arrays: dict):
    """Layer ``i`` from its JSON config and arrays; NetworkError if malformed."""
    where = f"{path}: layer {i}"
    if not isinstance(cfg, dict):
        raise NetworkError(f"{where}: config is not an object")
    cfg = dict(cfg)
    kind = cfg.pop("kind", None)
    cls = LAYER_KINDS.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise NetworkError(f"{where}: unknown kind {kind!r}")
    for f in cls.array_fields:
        if f in cfg:
            raise NetworkError(f"{where} ({kind}): {f} must be an array, not a config value")
    mine = {f: arrays[f"layer{i}.{f}"] for f in cls.array_fields if f"layer{i}.{f}" in arrays}
    try:
        return cls.from_config(cfg, mine)
    except NetworkError:
        raise
    except (TypeError, ValueError, KeyError, IndexError, AttributeError) as e:
        raise NetworkError(f"{where} ({kind}): malformed config: {e}") from None


def _read_npz(path: str | Path) -> dict[str, np.ndarray]:
    """The arrays of an .npz, refusing object arrays, zip bombs and arrays larger than declared."""
    arrays = {}
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            if not info.filename.endswith(".npy"):
                raise NetworkError(f"{path}: unexpected member {info.filename!r}")
            check_member(info, str(path), NetworkError)
            with zf.open(info) as fh:
                fmt = np.lib.format
                version = fmt.read_magic(fh)
                header = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
                shape, _, dtype = header(fh)
                if dtype.hasobject:
                    raise NetworkError(f"{path}: member {info.filename!r} holds Python objects")
                nbytes = int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
                if nbytes > info.file_size:
                    raise NetworkError(f"{path}: member {info.filename!r} declares shape {shape} "
                                       f"({nbytes} bytes) in {info.file_size} bytes")
            with zf.open(info) as fh:
                arrays[info.filename[:-4]] = np.lib.format.read_array(fh, allow_pickle=False)
    return arrays
