"""Read Keras model files without Keras: the model config (JSON) and every layer's weights.

Three layouts are understood, all through ``json`` and ``h5py``:

- ``.keras`` (Keras 3 and Keras >= 2.13): a zip holding ``metadata.json``, ``config.json`` and
  ``model.weights.h5``; the same layout unzipped in a directory; and a bare ``.weights.h5``
  (that weights file on its own). Weights live in ``layers/<key>/.../vars/<0, 1, ...>``.
- Legacy HDF5 (``model.save("m.h5")`` in Keras 2 and 3): root attributes ``keras_version``,
  ``backend``, ``model_config``; weights in ``model_weights/<layer>/`` listed, in the layer's
  own order, by the group attribute ``weight_names``.
- Legacy weights-only HDF5 (``save_weights("w.h5")``): the same groups at the root, no config.

Every layer's weights come out as a flat list of ``(name, float64 array)`` in Keras's
``layer.weights`` order. Nothing in a file is executed; zip bombs, HDF5 shape bombs, links,
external and virtual datasets, and non-float data are refused with ``ConversionError``; so are
the files of a model directory that are not regular files inside it (symlinks leading out).
Every array read is charged, at its widened size, to the load budget (``streamlstm.budget``).
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from streamlstm.budget import LoadBudget, budget_for, charge_json, load_budget, source_bytes
from streamlstm.errors import ConversionError
from streamlstm.safezip import check_member, is_bomb

from ..deps import missing

try:
    import h5py
except ImportError:  # only reading files needs it; open_keras_file says what to install
    h5py = None

MAX_JSON_BYTES = 64 << 20           # config.json / model_config
MAX_WEIGHTS_BYTES = 8 << 30         # model.weights.h5 inside a zip, and all arrays of one file
MAX_GROUP_DEPTH = 32                # nesting of groups under one layer (Keras uses < 6)
MAX_GROUPS = 1_000                  # groups under one layer (Keras uses < 10)
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"

WeightList = list[tuple[str, np.ndarray]]


class KerasFile:
    """A Keras file opened for reading: its model config, writer version and weights."""

    def __init__(self, source: str, config: dict | None, keras_version: str | None, store: "_Store"):
        self.source = source
        self.config = config
        self.keras_version = keras_version
        self._store = store

    def layer_weights(self, name: str) -> WeightList:
        """The weights of the top-level layer ``name`` in Keras's order ([] when it has none)."""
        return self._store.layer_weights(name)

    def layer_names(self) -> list[str]:
        """Names of the top-level layers the weights file knows, in file order."""
        return self._store.layer_names()

    def close(self) -> None:
        self._store.close()

    def __enter__(self) -> "KerasFile":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# ---------------------------------------------------------------------------------- entry
def open_keras_file(path: str | os.PathLike, config: Any = None) -> KerasFile:
    """Open a ``.keras`` zip/directory or an HDF5 file; ``config`` overrides/supplies the model config.

    ``config`` may be a dict, a JSON string or the path of a JSON file (what ``model.to_json()``
    writes); it is needed for weights-only files whose layers should not be guessed.
    """
    p = Path(path)
    src = str(path)
    if h5py is None:
        raise missing("h5py", f"{src}: reading Keras files (.keras, .h5, .weights.h5)")
    if p.is_dir():
        with load_budget(src, source_bytes(p)):
            return _open_keras_dir(p, config)
    if not p.is_file():
        raise ConversionError(f"{src}: no such file")
    with open(p, "rb") as fh:
        head = fh.read(8)
    with load_budget(src, p.stat().st_size):
        if head[:4] == b"PK\x03\x04" or zipfile.is_zipfile(p):
            return _open_keras_zip(p, config)
        if head == _HDF5_MAGIC or h5py.is_hdf5(src):
            return _open_h5(p, config)
    raise ConversionError(f"{src}: neither a .keras zip archive nor an HDF5 file")


def load_config(config: Any, where: str = "config") -> dict:
    """Accept a config as a dict, a JSON string or a path to a JSON file."""
    if isinstance(config, dict):
        return config
    if isinstance(config, (str, os.PathLike)) and not str(config).lstrip().startswith("{"):
        p = Path(config)
        if not p.is_file():
            raise ConversionError(f"{where}: {config!s} is neither JSON text nor a file")
        if p.stat().st_size > MAX_JSON_BYTES:
            raise ConversionError(f"{where}: {p} is larger than {MAX_JSON_BYTES} bytes")
        config = p.read_bytes()
    if isinstance(config, (bytes, bytearray)):
        config = bytes(config).decode("utf-8", errors="replace")
    if not isinstance(config, str):
        raise ConversionError(f"{where}: expected a dict, JSON text or a path, got {type(config).__name__}")
    return _parse_json(config, where)


def _parse_json(text: str | bytes, where: str) -> dict:
    if len(text) > MAX_JSON_BYTES:
        raise ConversionError(f"{where}: JSON larger than {MAX_JSON_BYTES} bytes")
    charge_json(len(text), f"parsing the JSON of {where.rsplit(': ', 1)[-1]}")
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError) as e:
        raise ConversionError(f"{where}: invalid JSON ({e})") from None
    if not isinstance(obj, dict):
        raise ConversionError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    return obj


# ---------------------------------------------------------------------------------- .keras
def _read_member(zf: zipfile.ZipFile, name: str, limit: int, src: str) -> bytes:
    info = zf.getinfo(name)
    check_member(info, src, ConversionError, limit=limit)
    with zf.open(info) as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise ConversionError(f"{src}: archive member {name!r} is larger than {limit} bytes")
    return data


def _open_keras_zip(p: Path, config: Any) -> KerasFile:
    src = str(p)
    try:
        zf = zipfile.ZipFile(p)
    except (zipfile.BadZipFile, OSError) as e:
        raise ConversionError(f"{src}: not a readable .keras archive ({e})") from None
    try:
        names = set(zf.namelist())
        if "model.weights.h5" not in names:
            extra = " (npz weights are not supported)" if "model.weights.npz" in names else ""
            raise ConversionError(f"{src}: .keras archive has no model.weights.h5{extra}")
        meta = {}
        if "metadata.json" in names:
            meta = _parse_json(_read_member(zf, "metadata.json", MAX_JSON_BYTES, src), f"{src}: metadata.json")
        if config is None:
            if "config.json" not in names:
                raise ConversionError(f"{src}: .keras archive has no config.json")
            config = _parse_json(_read_member(zf, "config.json", MAX_JSON_BYTES, src), f"{src}: config.json")
        else:
            config = load_config(config)
        info = zf.getinfo("model.weights.h5")
        check_member(info, src, ConversionError, limit=MAX_WEIGHTS_BYTES)
        if info.compress_type == zipfile.ZIP_STORED:
            fileobj = zf.open(info)          # Keras stores members uncompressed: read in place
        else:
            fileobj = io.BytesIO(_read_member(zf, "model.weights.h5", MAX_WEIGHTS_BYTES, src))
        h5 = _h5_open(fileobj, f"{src}: model.weights.h5")
    except ConversionError:
        zf.close()
        raise
    except (zipfile.BadZipFile, OSError, KeyError, RuntimeError) as e:
        zf.close()
        raise ConversionError(f"{src}: damaged .keras archive ({e})") from None
    version = _version_of(meta.get("keras_version"), config)
    store = _V3Store(h5, config, src, closers=[fileobj, zf], budget=_Budget(src, p.stat().st_size))
    return KerasFile(src, config, version, store)


def _member_of_dir(p: Path, name: str) -> Path | None:
    """``p/name`` if it exists, refused unless it is a regular file inside ``p`` (no symlink out)."""
    member = p / name
    if not member.exists() and not member.is_symlink():
        return None
    where = f"{p}: {name}"
    try:
        real, base = member.resolve(strict=True), p.resolve(strict=True)
    except (OSError, RuntimeError):
        raise ConversionError(f"{where}: a link that leads nowhere") from None
    if real.parent != base:
        raise ConversionError(f"{where} resolves to {real}, outside the model directory (symlink "
                              f"escape refused)")
    if not real.is_file():
        raise ConversionError(f"{where}: not a regular file")
    return real


def _open_keras_dir(p: Path, config: Any) -> KerasFile:
    src = str(p)
    wpath = _member_of_dir(p, "model.weights.h5")
    if wpath is None:
        raise ConversionError(f"{src}: directory has no model.weights.h5")
    meta = {}
    mpath = _member_of_dir(p, "metadata.json")
    if mpath is not None:
        meta = load_config(mpath, f"{src}: metadata.json")
    if config is None:
        cpath = _member_of_dir(p, "config.json")
        if cpath is None:
            raise ConversionError(f"{src}: directory has no config.json")
        config = load_config(cpath, f"{src}: config.json")
    else:
        config = load_config(config)
    h5 = _h5_open(str(wpath), str(wpath))
    store = _V3Store(h5, config, src, budget=_Budget(src, source_bytes(p)))
    return KerasFile(src, config, _version_of(meta.get("keras_version"), config), store)


# ---------------------------------------------------------------------------------- HDF5
def _h5_open(fileobj, where: str) -> h5py.File:
    try:
        return h5py.File(fileobj, "r")
    except (OSError, ValueError) as e:
        raise ConversionError(f"{where}: not a readable HDF5 file ({e})") from None


def _open_h5(p: Path, config: Any) -> KerasFile:
    src = str(p)
    h5 = _h5_open(str(p), src)
    budget = _Budget(src, p.stat().st_size)
    try:
        if "layers" in h5 or "_layer_checkpoint_dependencies" in h5:
            # A Keras 3 style ``.weights.h5`` on its own: no config, no version.
            cfg = load_config(config) if config is not None else None
            return KerasFile(src, cfg, _version_of(None, cfg), _V3Store(h5, cfg, src, budget=budget))
        root_attrs = h5.attrs
        if config is not None:
            cfg = load_config(config)
        elif "model_config" in root_attrs:
            cfg = _parse_json(_attr_str(root_attrs["model_config"]), f"{src}: model_config")
        else:
            cfg = None
        if "model_weights" in h5:
            wroot = _safe_group(h5, "model_weights", src)
        elif "layer_names" in root_attrs:
            wroot = h5
        else:
            raise ConversionError(f"{src}: HDF5 file holds no Keras weights (no model_weights group, "
                                  f"no layer_names attribute)")
        version = None
        for attrs in (root_attrs, wroot.attrs):
            if "keras_version" in attrs:
                version = _attr_str(attrs["keras_version"])
                break
        return KerasFile(src, cfg, _version_of(version, cfg), _LegacyStore(h5, wroot, src, budget))
    except BaseException:
        h5.close()
        raise


def _attr_str(v) -> str:
    if isinstance(v, bytes):
        return v.decode("utf-8", errors="replace")
    if isinstance(v, np.ndarray) and v.shape == ():
        return _attr_str(v[()])
    return str(v)


def _attr_str_list(attrs, name: str) -> list[str]:
    """A list-of-strings attribute, including Keras's chunked ``name0``, ``name1`` ... form."""
    if name in attrs:
        values = list(np.atleast_1d(attrs[name]))
    else:
        values, i = [], 0
        while f"{name}{i}" in attrs:
            values.extend(np.atleast_1d(attrs[f"{name}{i}"]))
            i += 1
    return [_attr_str(v) for v in values]


def _version_of(version: Any, config: dict | None) -> str | None:
    if version:
        return str(version)
    if isinstance(config, dict) and config.get("keras_version"):
        return str(config["keras_version"])
    return None


def _link_kind(group: h5py.Group, name: str):
    return group.get(name, default=None, getclass=True, getlink=True)


def _safe_group(parent: h5py.Group, path: str, src: str) -> h5py.Group:
    cur = parent
    for part in path.split("/"):
        if not part or part not in cur:
            raise ConversionError(f"{src}: HDF5 group {path!r} not found")
        if _link_kind(cur, part) in (h5py.ExternalLink, h5py.SoftLink):
            raise ConversionError(f"{src}: HDF5 link at {path!r} refused (soft/external links are not followed)")
        cur = cur[part]
        if not isinstance(cur, h5py.Group):
            raise ConversionError(f"{src}: {path!r} is not an HDF5 group")
    return cur


class _Budget:
    """The bytes one file's weights may take: the load budget (proportional to the file's size),
    and at most ``MAX_WEIGHTS_BYTES`` in any case. The load budget is the active load's when the
    file is opened inside ``sl.load``, so the weights, read later, draw from the same one."""

    def __init__(self, src: str, file_bytes: int):
        self.src = src
        self.load: LoadBudget = budget_for(src, file_bytes)
        self.left = MAX_WEIGHTS_BYTES
        self.read: dict = {}  # dataset id -> array: a dataset hard-linked from many places is read once

    def take(self, n: int, what: str) -> None:
        if n > self.left:
            raise ConversionError(f"{self.src}: {what}: weights exceed {MAX_WEIGHTS_BYTES} bytes in total")
        self.load.take(n, what)
        self.left -= n


def _safe_dataset(group: h5py.Group, path: str, src: str, budget: _Budget) -> np.ndarray:
    where = f"{src}: {group.name.rstrip('/')}/{path}"
    parent, _, leaf = path.rpartition("/")
    if parent:
        group = _safe_group(group, parent, src)
    if leaf not in group:
        raise ConversionError(f"{where}: dataset not found")
    if _link_kind(group, leaf) in (h5py.ExternalLink, h5py.SoftLink):
        raise ConversionError(f"{where}: soft/external link refused")
    ds = group[leaf]
    if not isinstance(ds, h5py.Dataset):
        raise ConversionError(f"{where}: not a dataset")
    if ds.external:
        raise ConversionError(f"{where}: dataset stored in external files refused")
    if ds.is_virtual:
        raise ConversionError(f"{where}: virtual dataset refused")
    bf16 = _attr_str(ds.attrs["dtype"]) == "bfloat16" if "dtype" in ds.attrs else False
    if not (ds.dtype.kind == "f" or (bf16 and ds.dtype.itemsize == 2)):
        raise ConversionError(f"{where}: dtype {ds.dtype} is not floating point")
    declared = math.prod(ds.shape) * ds.dtype.itemsize
    stored = ds.id.get_storage_size()
    if is_bomb(declared, stored):
        raise ConversionError(f"{where}: declares {declared} bytes but stores {stored}: refusing a possible "
                              f"HDF5 shape bomb")
    if ds.id in budget.read:
        return budget.read[ds.id]
    budget.take(declared + math.prod(ds.shape) * 8, f"dataset {ds.name}")  # as stored, then as float64
    data = ds[()]
    if bf16:
        bits = np.asarray(data).view(np.uint16).astype(np.uint32) << 16
        arr = bits.view(np.float32).astype(np.float64)
    else:
        arr = np.asarray(data, dtype=np.float64)
    arr.flags.writeable = False
    budget.read[ds.id] = arr
    return arr


class _Store:
    def layer_weights(self, name: str) -> WeightList:
        raise NotImplementedError

    def layer_names(self) -> list[str]:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class _LegacyStore(_Store):
    """``model_weights/<layer>/`` groups whose ``weight_names`` attribute lists datasets in order."""

    def __init__(self, h5: h5py.File, root: h5py.Group, src: str, budget: "_Budget"):
        self.h5, self.root, self.src = h5, root, src
        self.budget = budget

    def layer_names(self) -> list[str]:
        names = _attr_str_list(self.root.attrs, "layer_names")
        return names or [k for k in self.root if k != "top_level_model_weights"]

    def layer_weights(self, name: str) -> WeightList:
        if name not in self.root:
            return []
        g = _safe_group(self.root, name, self.src)
        return [(wn, _safe_dataset(g, wn, self.src, self.budget)) for wn in _attr_str_list(g.attrs, "weight_names")]

    def close(self) -> None:
        self.h5.close()


# Children of a layer's group, in the order Keras lists their weights (layer.weights).
_CHILD_ORDER = ("cell", "layer", "forward_layer", "backward_layer")


def _snake(name: str) -> str:
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


class _V3Store(_Store):
    """Keras 3 ``model.weights.h5``: ``layers/<key>/vars/<i>``, keys derived from class names.

    Each ``vars`` group carries the layer's own name as an attribute (recent Keras); otherwise the
    keys are matched to the config's layers the way Keras numbers them (snake-case class name,
    ``_1``, ``_2`` ... for repeats).
    """

    def __init__(self, h5: h5py.File, config: dict | None, src: str, closers: list | None = None, *,
                 budget: "_Budget"):
        self.h5, self.src, self.closers = h5, src, closers or []
        self.budget = budget
        self.visited: set = set()  # group ids collected for the current layer
        top = "layers" if "layers" in h5 else "_layer_checkpoint_dependencies"
        self.root = _safe_group(h5, top, src) if top in h5 else None
        self.keys = list(self.root.keys()) if self.root is not None else []
        named = {}
        for key in self.keys:
            g = self.root.get(key, getlink=True)
            if isinstance(g, h5py.HardLink) and isinstance(self.root[key], h5py.Group) and "vars" in self.root[key]:
                v = self.root[key]["vars"]
                if isinstance(v, h5py.Group) and "name" in v.attrs:
                    named[_attr_str(v.attrs["name"])] = key
        self.by_name: dict[str, str] = dict(self._keys_from_config(config) or {})
        self.by_name.update(named)
        for k in self.keys:  # the group keys name layers too when nothing else does
            self.by_name.setdefault(k, k)

    @staticmethod
    def _keys_from_config(config: dict | None) -> dict[str, str] | None:
        if not isinstance(config, dict) or not isinstance(config.get("config"), dict):
            return None
        layers = config["config"].get("layers")
        if not isinstance(layers, list):
            return None
        if config.get("class_name") == "Sequential":
            layers = [l for l in layers if isinstance(l, dict) and l.get("class_name") != "InputLayer"]
        used: dict[str, int] = {}
        out = {}
        for l in layers:
            if not isinstance(l, dict):
                return None
            key = _snake(str(l.get("class_name", "")))
            if key in used:
                used[key] += 1
                key = f"{key}_{used[key]}"
            else:
                used[key] = 0
            name = (l.get("config") or {}).get("name") or l.get("name")
            out[str(name)] = key
        return out

    def layer_names(self) -> list[str]:
        return list(self.by_name)

    def layer_weights(self, name: str) -> WeightList:
        key = self.by_name.get(name)
        if key is None or self.root is None or key not in self.root:
            return []
        self.visited = set()
        return self._collect(_safe_group(self.root, key, self.src), f"layers/{key}")

    def _collect(self, g: h5py.Group, path: str, depth: int = 0) -> WeightList:
        if depth > MAX_GROUP_DEPTH:
            raise ConversionError(f"{self.src}: HDF5 groups nested deeper than {MAX_GROUP_DEPTH} at {path!r} "
                                  f"(a hard-link cycle?)")
        if g.id in self.visited:
            raise ConversionError(f"{self.src}: HDF5 group at {path!r} is also reachable by another path "
                                  f"(hard links are refused)")
        self.visited.add(g.id)
        if len(self.visited) > MAX_GROUPS:
            raise ConversionError(f"{self.src}: more than {MAX_GROUPS} HDF5 groups under {path!r}")
        out: WeightList = []
        if "vars" in g:
            v = _safe_group(g, "vars", self.src)
            for k in sorted(v.keys(), key=lambda s: (not s.isdigit(), int(s) if s.isdigit() else 0, s)):
                out.append((f"{path}/vars/{k}", _safe_dataset(v, k, self.src, self.budget)))
        children = [k for k in _CHILD_ORDER if k in g] + sorted(k for k in g if k != "vars" and k not in _CHILD_ORDER)
        for k in children:
            if isinstance(g.get(k, getlink=True), h5py.HardLink) and isinstance(g[k], h5py.Group):
                out += self._collect(_safe_group(g, k, self.src), f"{path}/{k}", depth + 1)
        return out

    def close(self) -> None:
        self.h5.close()
        for c in self.closers:
            c.close()
