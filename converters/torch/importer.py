"""PyTorch import: an nn.Module, a state dict or a checkpoint file -> Network.

Sources: a ``torch.nn.Module``; a state dict (mapping of name -> tensor or ndarray, possibly
nested in a checkpoint dict); or a file (``.pt .pth .ckpt .bin`` written by ``torch.save`` in
the zip or legacy format, or ``.safetensors``). Files are read without importing torch (see
``pickle`` and ``safetensors``); torch is imported only when given a torch object.

The layer chain comes from the module (``nn.Sequential`` or a supported leaf), from
``layers=`` (a custom module's children in forward order), or, for state dicts, from the key
names and shapes. ``layers=`` entries (see ``_parse_spec``) name children / key prefixes and may
state a type and options: ``"lstm"``, ``("rnn", "RNN", {"nonlinearity": "relu"})``,
``"ReLU"``, ``("LeakyReLU", {"negative_slope": 0.2})`` or ``{"name": "fc", "type": "Linear"}``.

Front ends: ``nn.Embedding`` -> Embedding; ``nn.Conv1d`` over time -> TimeConv1d, its time
padding stated in ``layers=`` (``{"padding": "causal"}``, ``"same"``, ``(left, right)``) or read
from the module (see ``_conv1d``); ``nn.BatchNorm1d`` folded at load (``..frontend``);
``nn.LayerNorm`` -> LayerNorm.

Conventions: PyTorch LSTM gates i,f,g,o become ONNX i,o,f,c; GRU r,z,n become z,r,h with
``linear_before_reset``; ``bias_ih`` -> Wb and ``bias_hh`` -> Rb; ``weight_hr`` -> proj;
each stacked layer becomes one IR layer; bidirectional layers concatenate [forward, backward].
"""

from __future__ import annotations

import dataclasses

import os
import re
import sys
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from streamlstm.errors import ConversionError, NetworkError
from streamlstm.network import GRU, LSTM, RNN, Activation, Dense, Embedding, LayerNorm, Network, TimeConv1d, act

from ..frontend import BatchNorm, fold_front_end
from ..normalise import normalise
from ..safetensors import is_safetensors, read_safetensors
from .pickle import load_torch_file

FILE_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin", ".safetensors")

_RECURRENT = ("LSTM", "GRU", "RNN")
_CELLS = ("LSTMCell", "GRUCell", "RNNCell")
_ACTIVATIONS = ("ReLU", "Tanh", "Sigmoid", "Softmax", "LeakyReLU", "ELU", "Hardsigmoid",
                "Softplus", "Softsign", "Identity", "Dropout")
_FRONT = ("Embedding", "Conv1d", "BatchNorm1d", "LayerNorm")
_TYPES = {t.lower(): t for t in (*_RECURRENT, *_CELLS, "Linear", *_FRONT, *_ACTIVATIONS)}
# Options each type accepts in a layers= spec (checked against the weights where they can be).
_OPTIONS = {
    **{t: {"input_size", "hidden_size", "num_layers", "bias", "batch_first", "dropout",
           "bidirectional", "proj_size", "nonlinearity"} for t in _RECURRENT},
    **{t: {"input_size", "hidden_size", "bias", "nonlinearity"} for t in _CELLS},
    "Linear": {"in_features", "out_features", "bias"},
    "Embedding": {"num_embeddings", "embedding_dim", "padding_idx", "max_norm", "norm_type",
                  "scale_grad_by_freq", "sparse"},
    "Conv1d": {"in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "groups",
               "bias", "padding_mode"},
    "BatchNorm1d": {"num_features", "eps", "momentum", "affine", "track_running_stats"},
    "LayerNorm": {"normalized_shape", "eps", "elementwise_affine", "bias"},
    "LeakyReLU": {"negative_slope", "inplace"}, "ELU": {"alpha", "inplace"},
    "Softplus": {"beta", "threshold"}, "Softmax": {"dim"}, "Dropout": {"p", "inplace"},
    "ReLU": {"inplace"}, "Hardsigmoid": {"inplace"},
}
_GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}
# Row blocks of PyTorch's stacked gates in the IR's (ONNX) order.
_GATE_ORDER = {"LSTM": (0, 3, 1, 2), "GRU": (1, 0, 2), "RNN": (0,)}
_PARAM = re.compile(r"^(weight_ih|weight_hh|bias_ih|bias_hh|weight_hr)(?:_l(\d+)(_reverse)?)?$")
# Where nested checkpoints usually keep the model's state dict, most likely first.
_STATE_KEYS = ("state_dict", "model_state_dict", "model_state", "model", "net", "network",
               "module", "weights", "params", "ema")


def import_torch(source: Any, *, layers: Sequence | None = None, key: str | Sequence[str] | None = None,
                 prefix: str | None = None) -> Network:
    """Convert a torch module, a state dict or a checkpoint file into a Network.

    ``layers`` names the chain (children / key prefixes in forward order, optionally with types
    and options); ``key`` picks the state dict inside a nested checkpoint (a key or a path of
    keys); ``prefix`` keeps only the state-dict keys under it (e.g. ``"model"``) and strips it.
    """
    spec = _parse_spec(layers) if layers is not None else None
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(source, torch.nn.Module):
        if key is not None or prefix is not None:
            raise ConversionError("key= and prefix= apply to state dicts and checkpoints, not to modules")
        return _from_module(source, spec)
    if isinstance(source, (str, os.PathLike)):
        _existing(source)
        return _from_file(source, is_safetensors(source), spec, key, prefix)
    if isinstance(source, Mapping):
        state = _select_state_dict(_to_numpy_tree(source), key, prefix, "state dict")
        return _from_state_dict(state, spec, True, "state dict", "")
    raise ConversionError(f"cannot import a {type(source).__name__} as a torch model: pass an "
                          f"nn.Module, a state dict or a path ({', '.join(FILE_SUFFIXES)})")


def import_checkpoint(path: str | os.PathLike, *, safetensors: bool, layers: Sequence | None = None,
                      key: str | Sequence[str] | None = None, prefix: str | None = None) -> Network:
    """A checkpoint file whose format the caller already told (``load``'s sniff): a torch.save
    pickle (zip or legacy) or, with ``safetensors``, a ``.safetensors`` file. Options as
    :func:`import_torch`."""
    _existing(path)
    return _from_file(path, safetensors, _parse_spec(layers) if layers is not None else None, key, prefix)


def _existing(path: str | os.PathLike) -> None:
    if not Path(path).is_file():
        raise ConversionError(f"{path}: no such file")


def _from_file(path: str | os.PathLike, safetensors: bool, spec, key, prefix) -> Network:
    path = Path(path)
    where = str(path)
    if safetensors:
        tree, ordered = read_safetensors(path), False
    else:
        tree, ordered = load_torch_file(path), True
    state = _select_state_dict(tree, key, prefix, where)
    return _from_state_dict(state, spec, ordered, where, path.stem)


# ------------------------------------------------------------------ layers= spec
@dataclass
class _Entry:
    """One element of the chain: a child / key prefix and/or a type, with options."""

    name: str | None
    type: str | None = None
    options: dict = field(default_factory=dict)


def _canonical_type(t: Any, where: str) -> str:
    ct = _TYPES.get(str(t).lower()) if isinstance(t, str) else None
    if ct is None:
        raise ConversionError(f"{where}: unknown layer type {t!r}; supported: {', '.join(_TYPES.values())}")
    return ct


def _parse_spec(layers: Sequence) -> list[_Entry]:
    """Normalize ``layers=``: each entry is a str, a tuple (name[, type][, options]) or a dict."""
    if isinstance(layers, (str, bytes)) or not isinstance(layers, Sequence) or not layers:
        raise ConversionError("layers= must be a non-empty list, e.g. layers=['lstm', 'fc']")
    out = []
    for i, e in enumerate(layers):
        where = f"layers[{i}]"
        if isinstance(e, str):
            out.append(_Entry(e))
        elif isinstance(e, dict):
            opts = dict(e)
            name, typ = opts.pop("name", None), opts.pop("type", None)
            if name is None and typ is None:
                raise ConversionError(f"{where}: a dict entry needs 'name' and/or 'type'")
            out.append(_Entry(name, _canonical_type(typ, where) if typ else None, opts))
        elif isinstance(e, tuple) and 1 <= len(e) <= 3 and isinstance(e[0], (str, type(None))):
            rest = list(e[1:])
            opts = rest.pop() if rest and isinstance(rest[-1], dict) else {}
            if len(rest) > 1 or (rest and not isinstance(rest[0], str)):
                raise ConversionError(f"{where}: expected (name, type, options), got {e!r}")
            typ = _canonical_type(rest[0], where) if rest else None
            if e[0] is None and typ is None:
                raise ConversionError(f"{where}: an entry without a name needs a type")
            out.append(_Entry(e[0], typ, dict(opts)))
        else:
            raise ConversionError(f"{where}: expected a name, a (name, type, options) tuple or a dict, "
                                  f"got {e!r}")
        ent = out[-1]
        if ent.type is not None:
            unknown = set(ent.options) - _OPTIONS.get(ent.type, set())
            if unknown:
                raise ConversionError(f"{where}: {ent.type} takes no option(s) {sorted(unknown)}")
    return out


# ------------------------------------------------------------------ modules
def _from_module(module: Any, spec: list[_Entry] | None) -> Network:
    torch = sys.modules["torch"]
    root = type(module).__name__
    if spec is None:
        leaves = _flatten_module(module, "", torch, top=True)
    else:
        leaves = []
        for e in spec:
            sub = _submodule(module, e.name) if e.name else None
            if sub is None:
                if (e.type or _TYPES.get((e.name or "").lower())) not in _ACTIVATIONS:
                    children = ", ".join(f"{n} ({type(c).__name__})" for n, c in module.named_children())
                    raise ConversionError(f"{root}: layers= names {e.name!r}, which is neither a child "
                                          f"module nor an activation type; children: {children}")
                leaves.append((e.name or e.type, _canonical_type(e.type or e.name, root), e.options, {}))
            else:
                got = _flatten_module(sub, e.name, torch)
                if e.type is not None and (len(got) != 1 or got[0][1] != e.type):
                    raise ConversionError(f"{root}.{e.name}: layers= says {e.type}, the module is "
                                          f"{type(sub).__name__}")
                if e.options:
                    unknown = set(e.options) - _OPTIONS.get(got[0][1], set()) if len(got) == 1 else {"*"}
                    if unknown:
                        raise ConversionError(f"{root}.{e.name}: layers= options {sorted(e.options)} do not "
                                              f"apply to {type(sub).__name__}")
                    label, typ, opts, params = got[0]
                    got = [(label, typ, {**opts, **e.options, "stated": set(e.options)}, params)]
                leaves.extend(got)
    return _build_network(leaves, name=root, where=root)


def _submodule(module: Any, name: str):
    """The submodule at a dotted path, else the only one whose path ends with ``.name``."""
    try:
        return module.get_submodule(name)
    except AttributeError:
        pass
    match = [m for path, m in module.named_modules() if path.endswith("." + name)]
    if len(match) > 1:
        raise ConversionError(f"{type(module).__name__}: layers= name {name!r} matches several "
                              f"submodules; use the full dotted path")
    return match[0] if match else None


def _flatten_module(m: Any, path: str, torch: Any, top: bool = False) -> list[tuple]:
    """(label, type, options, params) for a supported module, recursing into Sequential.

    A ModuleList named in layers= counts as a chain applied in order.
    """
    nn = torch.nn
    if isinstance(m, nn.Sequential) or (isinstance(m, nn.ModuleList) and not top):
        # _modules, not named_children(): that one skips a module instance used twice.
        return [leaf for n, c in m._modules.items() if c is not None
                for leaf in _flatten_module(c, f"{path}.{n}" if path else n, torch)]
    typ = _module_type(m, nn)
    if typ is None:
        where = path or type(m).__name__
        children = [f"'{n}' ({type(c).__name__})" for n, c in m.named_children()]
        if top and children:
            names = [n for n, _ in m.named_children()]
            raise ConversionError(
                f"{where}: a custom module; its forward() cannot be read. Pass layers=[...] naming its "
                f"children in the order forward() applies them, e.g. layers={names!r} "
                f"(children: {', '.join(children)})")
        raise ConversionError(f"{where}: unsupported module {type(m).__name__}; supported: nn.Sequential "
                              f"of {', '.join(_TYPES.values())}" + (
                                  "; for a custom submodule name its children with dotted names in layers="
                                  if children else ""))
    opts = _module_options(m, typ)
    params = {k: _tensor_to_numpy(v) for k, v in m.state_dict().items()}
    return [(path, typ, opts, params)]


def _module_type(m: Any, nn: Any) -> str | None:
    for t in (*_RECURRENT, *_CELLS, "Linear", *_FRONT, *_ACTIVATIONS):
        cls = getattr(nn, t, None)
        if cls is not None and isinstance(m, cls):
            return t
    return None


def _module_options(m: Any, typ: str) -> dict:
    if typ in _RECURRENT:
        opts = {k: getattr(m, k) for k in ("input_size", "hidden_size", "num_layers", "bias",
                                            "bidirectional")}
        if typ == "LSTM":
            opts["proj_size"] = getattr(m, "proj_size", 0)
        if typ == "RNN":
            opts["nonlinearity"] = m.nonlinearity
        return opts
    if typ in _CELLS:
        opts = {k: getattr(m, k) for k in ("input_size", "hidden_size", "bias")}
        if typ == "RNNCell":
            opts["nonlinearity"] = m.nonlinearity
        return opts
    if typ == "Linear":
        return {"in_features": m.in_features, "out_features": m.out_features}
    if typ == "Embedding":
        return {"padding_idx": m.padding_idx, "max_norm": m.max_norm}
    if typ == "Conv1d":
        return {**{k: getattr(m, k) for k in ("stride", "padding", "dilation", "groups", "padding_mode")},
                "stated": set()}
    if typ == "BatchNorm1d":
        return {"eps": m.eps, "track_running_stats": m.track_running_stats}
    if typ == "LayerNorm":
        return {"eps": m.eps, "normalized_shape": tuple(m.normalized_shape),
                "elementwise_affine": m.elementwise_affine}
    attrs = {"LeakyReLU": ("negative_slope",), "ELU": ("alpha",), "Softplus": ("beta", "threshold"),
             "Softmax": ("dim",)}.get(typ, ())
    return {a: getattr(m, a) for a in attrs}


def _tensor_to_numpy(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        return v
    if hasattr(v, "detach") and hasattr(v, "numpy"):  # a torch.Tensor
        t = v.detach().cpu()
        if t.is_floating_point():
            t = t.double()
        return t.numpy()
    return v


def _to_numpy_tree(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {k: _to_numpy_tree(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_to_numpy_tree(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_to_numpy_tree(v) for v in obj)
    return _tensor_to_numpy(obj)


# ------------------------------------------------------------------ state dicts
def _is_state_dict(obj: Any) -> bool:
    return (isinstance(obj, Mapping) and len(obj) > 0
            and all(isinstance(k, str) and isinstance(v, np.ndarray) for k, v in obj.items()))


def _has_layer_keys(sd: Mapping) -> bool:
    return any(_PARAM.match(k.rsplit(".", 1)[-1]) or k.rsplit(".", 1)[-1] == "weight" for k in sd)


def _find_state_dicts(obj: Any, path: tuple = (), depth: int = 0,
                      seen: set | None = None) -> list[tuple[tuple, Mapping]]:
    # ``seen``: each container is visited once, so shared or self-referencing ones cost nothing.
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return []
    if isinstance(obj, (Mapping, list, tuple)):
        seen.add(id(obj))
    if _is_state_dict(obj):
        return [(path, obj)]
    found = []
    if depth < 6 and isinstance(obj, Mapping):
        for k, v in obj.items():
            found += _find_state_dicts(v, path + (k,), depth + 1, seen)
    elif depth < 6 and isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            found += _find_state_dicts(v, path + (i,), depth + 1, seen)
    return found


def _select_state_dict(tree: Any, key, prefix: str | None, where: str) -> dict[str, np.ndarray]:
    """The state dict to convert: ``tree[key]``, else the only / best-named one inside ``tree``."""
    if key is not None:
        path = (key,) if isinstance(key, (str, int)) else tuple(key)
        obj = tree
        for i, k in enumerate(path):
            found = (k in obj if isinstance(obj, Mapping) else
                     isinstance(obj, (list, tuple)) and type(k) is int and -len(obj) <= k < len(obj))
            if not found:
                have = list(obj)[:20] if isinstance(obj, Mapping) else type(obj).__name__
                raise ConversionError(f"{where}: key {path[:i + 1]!r} not found; available: {have}")
            obj = obj[k]
        if not _is_state_dict(obj):
            raise ConversionError(f"{where}: {path!r} is not a state dict (a mapping of names to tensors)")
        state = dict(obj)
    else:
        cands = [(p, sd) for p, sd in _find_state_dicts(tree) if _has_layer_keys(sd)]
        if not cands:
            raise ConversionError(f"{where}: no state dict with layer weights found (top-level keys: "
                                  f"{list(tree)[:20] if isinstance(tree, Mapping) else type(tree).__name__})")
        if len(cands) > 1:
            ranked = [c for name in _STATE_KEYS for c in cands if c[0] and c[0][-1] == name]
            if not ranked:
                raise ConversionError(f"{where}: several state dicts found at "
                                      f"{[p for p, _ in cands]}; pick one with key=")
            cands = ranked
        state = dict(cands[0][1])
    if prefix:
        pre = prefix if prefix.endswith(".") else prefix + "."
        state = {k[len(pre):]: v for k, v in state.items() if k.startswith(pre)}
        if not state:
            raise ConversionError(f"{where}: no keys start with prefix {pre!r}")
    return state


@dataclass
class _Group:
    """The parameters of one module, found by key prefix (``name`` is the module path)."""

    name: str
    params: dict[str, np.ndarray]

    @property
    def kind(self) -> str:
        names = set(self.params)
        if names and all(_PARAM.match(n) for n in names):
            return "recurrent"
        if _front_type(self.name, self.params) is not None:
            return "front end"
        if names and names <= {"weight", "bias"} and "weight" in names:
            return "linear"
        return "unknown"


def _groups(state: dict[str, np.ndarray]) -> list[_Group]:
    groups: dict[str, _Group] = {}
    for k, v in state.items():
        mod, _, p = k.rpartition(".")
        groups.setdefault(mod, _Group(mod, {})).params[p] = v
    return list(groups.values())


def _numeric_key(name: str):
    return [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in name.split(".")]


def _from_state_dict(state: dict[str, np.ndarray], spec: list[_Entry] | None, ordered: bool,
                     where: str, name: str) -> Network:
    groups = _groups(state)
    if not ordered:
        groups.sort(key=lambda g: _numeric_key(g.name))
        ordered = _numbered(g.name for g in groups)
    if spec is not None:
        leaves = []
        for i, e in enumerate(spec):
            leaves.extend(_spec_leaves(e, groups, f"{where}: layers[{i}]"))
        return _build_network(leaves, name=name, where=where)
    bad = [g for g in groups if g.kind == "unknown"]
    if bad:
        desc = "; ".join(f"{g.name or '<root>'}: {sorted(g.params)}" for g in bad[:5])
        raise ConversionError(f"{where}: cannot infer the layer type of {desc}. Pass layers=[...] naming "
                              f"the modules to use in forward order (and prefix=/key= for nested "
                              f"checkpoints)")
    leaves = [(g.name, None, {}, g.params) for g in groups]
    built = _fit_groups([_build_leaf(leaf, where) for leaf in leaves], where)
    sizes = [_leaf_io(b) for b in built]
    order = list(range(len(leaves)))
    if not ordered or not _chains(sizes, order):
        orders = _chain_orders(sizes)
        if not orders:
            raise ConversionError(f"{where}: the modules {[g.name for g in groups]} with (input, output) "
                                  f"sizes {sizes} do not chain in any order; pass layers=[...]")
        if len(orders) > 1:
            raise ConversionError(f"{where}: the order of the modules {[g.name for g in groups]} is "
                                  f"ambiguous from the shapes; pass layers=[...] in forward order")
        order = orders[0]
    layers = [x for i in order for x in built[i]]
    _warn_inferred(where, [l for l in layers if not isinstance(l, BatchNorm)])
    return _network(layers, name, where)


def _warn_inferred(where: str, layers: list) -> None:
    chain = " -> ".join(f"{l.kind} {l.name!r}" if l.name else l.kind for l in layers)
    warnings.warn(f"{where}: layer chain inferred from the state dict's keys and shapes: {chain}. "
                  "Activations applied in forward() (torch.sigmoid, F.relu, ...) are not stored in a "
                  "state dict and are missing here; pass layers=[...] to state the chain, activations "
                  "included (for example layers=['gru', 'fc', 'Sigmoid'])", UserWarning, stacklevel=2)


def _spec_leaves(e: _Entry, groups: list[_Group], where: str) -> list[tuple]:
    """The leaves (label, type, options, params) one layers= entry stands for."""
    if e.name is not None:
        exact = [g for g in groups if g.name == e.name]
        suffix = [g for g in groups if g.name.endswith("." + e.name)]
        match = exact or suffix
        if len(match) > 1:
            raise ConversionError(f"{where}: {e.name!r} matches several modules "
                                  f"{[g.name for g in match]}; use the full dotted name")
        if match:
            return [(match[0].name, e.type, e.options, match[0].params)]
        under = [g for g in groups if g.name.startswith(e.name + ".")]
        if under and e.type is None:
            return [(g.name, None, {}, g.params) for g in under]
    typ = e.type or _TYPES.get((e.name or "").lower())
    if typ in _ACTIVATIONS:
        return [(e.name or typ, typ, e.options, {})]
    known = ", ".join(repr(g.name) for g in groups[:20])
    raise ConversionError(f"{where}: no parameters under {e.name!r} (modules: {known}); a "
                          f"parameterless layer is given by its type, e.g. 'ReLU' or ('act', 'ReLU')")


def _numbered(names) -> bool:
    """True if sorted names differ first in a numeric component ("0", "1", "10"): Sequential order."""
    names = [n.split(".") for n in names]
    for a, b in zip(names, names[1:]):
        diff = next((x, y) for x, y in zip(a + [""], b + [""]) if x != y)
        if not (diff[0].isdigit() and diff[1].isdigit()):
            return False
    return True


def _chains(sizes: list[tuple[int, int]], order: list[int]) -> bool:
    width = None
    for i in order:
        if width is not None and sizes[i][0] != width:
            return False
        width = sizes[i][1]
    return True


def _chain_orders(sizes: list[tuple[int, int]], limit: int = 2) -> list[list[int]]:
    """Up to ``limit`` orders in which every module's input width is the previous output width.

    Gives up (returning ``limit`` dummy orders, i.e. "ambiguous") after 100000 search steps.
    """
    found: list[list[int]] = []
    budget = [100_000]

    def dfs(path: list[int], width):
        budget[0] -= 1
        if budget[0] < 0:
            found.extend([[]] * limit)
        if len(found) >= limit:
            return
        if len(path) == len(sizes):
            found.append(list(path))
            return
        for i, (inp, out) in enumerate(sizes):
            if i not in path and (width is None or inp == width):
                dfs(path + [i], out)

    dfs([], None)
    return found


# ------------------------------------------------------------------ building IR layers
def _build_network(leaves: list[tuple], name: str, where: str = "") -> Network:
    layers = [x for b in _fit_groups([_build_leaf(leaf, where) for leaf in leaves], where) for x in b]
    return _network(layers, name, where)


def _fit_groups(built: list[list], where: str) -> list[list]:
    """A state dict stores no Conv1d groups: a conv read as ungrouped whose weight fits the
    previous output width only as a grouped one gets those groups (with a warning)."""
    width = None
    out = []
    for b in built:
        b = list(b)
        for i, layer in enumerate(b):
            if (isinstance(layer, TimeConv1d) and layer.groups == 1 and width is not None
                    and width != layer.in_channels and width % layer.W.shape[1] == 0
                    and layer.out_channels % (width // layer.W.shape[1]) == 0):
                g = width // layer.W.shape[1]
                warnings.warn(f"{where}: {layer.label}: groups={g} inferred from the previous output width "
                              f"{width} (a state dict does not store groups)", UserWarning, stacklevel=3)
                layer = b[i] = dataclasses.replace(layer, groups=g)
            if isinstance(layer, BatchNorm):
                continue
            try:
                width = layer.output_width(width if width is not None else getattr(layer, "input_size", 0))
            except NetworkError:  # the chain does not fit in this order; the caller reports it
                width = None
        out.append(b)
    return out


def _network(layers: list, name: str, where: str) -> Network:
    if not any(hasattr(l, "input_size") for l in layers):
        raise ConversionError(f"{where or name}: the chain has no layer with weights")
    return normalise(fold_front_end(layers, where or name), source=where or name, name=name)


def _leaf_io(built: list) -> tuple[int, int]:
    """(input width, output width) of the IR layers one module became."""
    first = built[0]
    width = getattr(first, "input_size", None)
    if width is None:
        width = first.scale.size if isinstance(first, BatchNorm) else first.gamma.size
    out = width
    for layer in built:
        out = out if isinstance(layer, BatchNorm) else layer.output_width(out)
    return width, out


def _build_leaf(leaf: tuple, where: str) -> list:
    label, typ, opts, params = leaf
    here = f"{where}: {label or '<root>'}" if where else label
    try:
        if typ in _ACTIVATIONS:
            a = _activation(typ, opts, here)
            return [] if a is None else [Activation(a, name=label)]
        typ = typ or _front_type(label, params)
        if typ in _FRONT:
            return _front(typ, label, params, opts, here)
        if typ == "Linear" or (typ is None and params and set(params) <= {"weight", "bias"}):
            return [_linear(label, params, opts, here)]
        if typ is None or typ in _RECURRENT or typ in _CELLS:
            return _recurrent(label, params, typ, opts, here)
    except NetworkError as e:
        raise ConversionError(f"{here}: {e}") from None
    raise ConversionError(f"{here}: unsupported layer type {typ}")


def _activation(typ: str, o: dict, where: str):
    if typ in ("Identity", "Dropout"):
        return None
    if typ == "LeakyReLU":
        return act("LeakyRelu", o.get("negative_slope", 0.01))
    if typ == "ELU":
        return act("Elu", o.get("alpha", 1.0))
    if typ == "Hardsigmoid":
        return act("HardSigmoid", 1.0 / 6.0, 0.5)
    if typ == "Softplus":
        if float(o.get("beta", 1.0)) != 1.0:
            raise ConversionError(f"{where}: Softplus with beta={o['beta']} is not supported (only beta=1)")
        if float(o.get("threshold", 20.0)) < 15.0:
            raise ConversionError(f"{where}: Softplus with threshold={o['threshold']} is not supported "
                                  f"(the linear cut-off must be >= 15 to match log(1 + exp(x)))")
        return act("Softplus")
    if typ == "Softmax":
        if o.get("dim", -1) not in (-1, 2):
            raise ConversionError(f"{where}: Softmax over dim={o.get('dim')}: only the feature (last) "
                                  f"dimension is supported; use dim=-1")
        return act("Softmax")
    return act({"ReLU": "Relu", "Tanh": "Tanh", "Sigmoid": "Sigmoid", "Softsign": "Softsign"}[typ])


def _linear(label: str, p: dict, o: dict, where: str) -> Dense:
    if set(p) - {"weight", "bias"} or "weight" not in p:
        raise ConversionError(f"{where}: Linear expects weight and bias, found {sorted(p)}")
    W, b = p["weight"], p.get("bias")
    if W.ndim != 2 or (b is not None and b.shape != (W.shape[0],)):
        raise ConversionError(f"{where}: a Linear needs weight (out, in) and bias (out,), got "
                              f"{W.shape} and {None if b is None else b.shape}")
    for k, v in (("in_features", W.shape[1]), ("out_features", W.shape[0]), ("bias", b is not None)):
        if k in o and o[k] != v:
            raise ConversionError(f"{where}: layers= says {k}={o[k]!r}, the weights say {v!r}")
    return Dense(W, b, name=label)


_BN_KEYS = {"weight", "bias", "running_mean", "running_var", "num_batches_tracked"}


def _front_type(label: str, p: dict) -> str | None:
    """The front-end module type a state dict group's parameters show, or None.

    A 3-D ``weight`` is a Conv1d; ``running_mean``/``running_var`` a BatchNorm1d; 1-D
    ``weight``/``bias`` a LayerNorm; a lone 2-D ``weight`` under a name containing "emb" an
    Embedding (elsewhere it is a Linear without bias).
    """
    names = set(p)
    w = p.get("weight")
    if {"running_mean", "running_var"} <= names and names <= _BN_KEYS:
        return "BatchNorm1d"
    if not isinstance(w, np.ndarray) or not names <= {"weight", "bias"}:
        return None
    if w.ndim == 3:
        return "Conv1d"
    if w.ndim == 1 and (p.get("bias") is None or p["bias"].shape == w.shape):
        return "LayerNorm"
    if w.ndim == 2 and names == {"weight"} and "emb" in label.rsplit(".", 1)[-1].lower():
        return "Embedding"
    return None


def _front(typ: str, label: str, p: dict, o: dict, where: str) -> list:
    allowed = {"Embedding": {"weight"}, "Conv1d": {"weight", "bias"}, "BatchNorm1d": _BN_KEYS,
               "LayerNorm": {"weight", "bias"}}[typ]
    if set(p) - allowed:
        raise ConversionError(f"{where}: unexpected parameters {sorted(set(p) - allowed)} for a {typ}")
    if typ == "Embedding":
        return [_embedding(label, p, o, where)]
    if typ == "Conv1d":
        return [_conv1d(label, p, o, where)]
    if typ == "BatchNorm1d":
        if o.get("track_running_stats") is False or not {"running_mean", "running_var"} <= set(p):
            raise ConversionError(f"{where}: BatchNorm1d without running statistics normalises with each "
                                  f"batch's own statistics; only eval-mode running statistics can be folded")
        return [BatchNorm.from_stats(p["running_mean"], p["running_var"], p.get("weight"), p.get("bias"),
                                     float(o.get("eps", 1e-5)), label, where)]
    shape = o.get("normalized_shape")
    shape = (shape,) if isinstance(shape, int) else shape
    if shape is not None and len(tuple(shape)) != 1:
        raise ConversionError(f"{where}: LayerNorm over {tuple(shape)}: only the last axis (one size) is "
                              f"supported")
    gamma = p.get("weight")
    if gamma is None:
        if shape is None:
            raise ConversionError(f"{where}: a LayerNorm without weights needs normalized_shape in layers=")
        gamma = np.ones(tuple(shape)[0])
    if shape is not None and tuple(shape)[0] != gamma.size:
        raise ConversionError(f"{where}: normalized_shape={tuple(shape)}, the weight has {gamma.size} values")
    return [LayerNorm(gamma, p.get("bias"), float(o.get("eps", 1e-5)), name=label)]


def _embedding(label: str, p: dict, o: dict, where: str) -> Embedding:
    W = p.get("weight")
    if W is None or W.ndim != 2:
        raise ConversionError(f"{where}: an Embedding needs weight (num_embeddings, embedding_dim), got "
                              f"{None if W is None else W.shape}")
    if o.get("max_norm") is not None:
        raise ConversionError(f"{where}: Embedding with max_norm={o['max_norm']} renormalises rows at "
                              f"lookup time; not supported (renormalise the table and drop max_norm)")
    for k, v in (("num_embeddings", W.shape[0]), ("embedding_dim", W.shape[1])):
        if k in o and o[k] != v:
            raise ConversionError(f"{where}: layers= says {k}={o[k]!r}, the weights say {v!r}")
    return Embedding(W, name=label)


def _one(v, what: str, where: str) -> int:
    v = tuple(v) if isinstance(v, (tuple, list)) else (v,)
    if len(v) != 1 or isinstance(v[0], bool) or not isinstance(v[0], (int, np.integer)):
        raise ConversionError(f"{where}: {what}={v!r}: expected one integer")
    return int(v[0])


def _conv1d(label: str, p: dict, o: dict, where: str) -> TimeConv1d:
    """A Conv1d over time. Padding (left, right) of the time axis: ``padding`` stated in layers=
    ("causal", "same", an int for both sides or (left, right)); otherwise the module's own padding
    (p on both sides with 2p = span: centred, non-causal) or none, taken as causal: the forward
    left-pads (F.pad(x, (span, 0))), or chomps the last p outputs when p = span."""
    W, b = p.get("weight"), p.get("bias")
    if W is None or W.ndim != 3:
        raise ConversionError(f"{where}: a Conv1d needs weight (out, in / groups, kernel), got "
                              f"{None if W is None else W.shape}")
    stride, dilation = _one(o.get("stride", 1), "stride", where), _one(o.get("dilation", 1), "dilation", where)
    groups = int(o.get("groups", 1))
    if stride != 1:
        raise ConversionError(f"{where}: Conv1d over time with stride={stride} gives fewer frames than it "
                              f"reads; only stride 1 streams")
    for k, v in (("out_channels", W.shape[0]), ("in_channels", W.shape[1] * groups),
                 ("bias", b is not None)):
        if k in o and o[k] != v:
            raise ConversionError(f"{where}: layers= says {k}={o[k]!r}, the weights say {v!r}")
    if "kernel_size" in o and _one(o["kernel_size"], "kernel_size", where) != W.shape[2]:
        raise ConversionError(f"{where}: layers= says kernel_size={o['kernel_size']!r}, the weights say "
                              f"{W.shape[2]}")
    span = (W.shape[2] - 1) * dilation
    stated = o.get("stated", set(o))
    pad = o.get("padding", 0)
    module_pad = "padding" not in stated
    if pad == "causal" or pad == "valid" or (module_pad and pad in (0, (0,)) and span):
        padding = (span, 0)
    elif pad == "same":
        padding = (span // 2, span - span // 2)
    elif isinstance(pad, (tuple, list)) and len(pad) == 2:
        padding = (int(pad[0]), int(pad[1]))
    else:
        q = _one(pad, "padding", where)
        if module_pad and q == span:
            padding = (span, 0)  # padded both sides, the last q outputs chomped (TCN style)
        else:
            padding = (q, q)
    if sum(padding) != span:
        raise ConversionError(f"{where}: Conv1d padding {padding} of the time axis: left + right must be "
                              f"(kernel - 1) * dilation = {span} for one output per frame; state the "
                              f"padding forward() applies with layers=[('{label}', 'Conv1d', "
                              f"{{'padding': (left, right)}})] or 'causal'")
    if o.get("padding_mode", "zeros") != "zeros" and span:
        raise ConversionError(f"{where}: Conv1d padding_mode={o['padding_mode']!r}: over time only zero "
                              f"padding is supported (the stream starts from zeros)")
    if module_pad and span and pad in (0, (0,), span, (span,)) and padding == (span, 0):
        warnings.warn(f"{where}: Conv1d with padding={pad!r} taken as causal (the forward left-pads the "
                      f"time axis by {span}" + (" or chomps the last outputs" if pad not in (0, (0,)) else "")
                      + f"); state it with layers=[('{label}', 'Conv1d', {{'padding': 'causal'}})] or give "
                      f"(left, right)" + ("; a state dict stores no dilation either: 1 assumed, state "
                                          "'dilation' in layers= otherwise" if not o else ""),
                      UserWarning, stacklevel=2)
    return TimeConv1d(W, b, dilation=dilation, padding=padding, groups=groups, name=label)


def _recurrent(label: str, p: dict, typ: str | None, o: dict, where: str) -> list:
    slots: dict[tuple[int, int], dict[str, np.ndarray]] = {}
    cell_keys = False
    for k, v in p.items():
        m = _PARAM.match(k)
        if m is None:
            raise ConversionError(f"{where}: unexpected parameter {k!r} for a recurrent layer")
        cell_keys |= m.group(2) is None
        slots.setdefault((int(m.group(2) or 0), 1 if m.group(3) else 0), {})[m.group(1)] = v
    if cell_keys and (len(slots) > 1 or any(_PARAM.match(k).group(2) for k in p)):
        raise ConversionError(f"{where}: mixes cell parameters (weight_ih) with layer parameters "
                              f"(weight_ih_l0)")
    if typ is not None and (typ in _CELLS) != cell_keys:
        raise ConversionError(f"{where}: declared {typ}, but the parameter names are those of "
                              f"{'a cell' if cell_keys else 'a full layer (weight_ih_l0 ...)'}")
    num_layers = 1 + max(k for k, _ in slots)
    D = 1 + max(d for _, d in slots)
    missing = [(k, d) for k in range(num_layers) for d in range(D) if (k, d) not in slots]
    if missing:
        raise ConversionError(f"{where}: parameters of layer/direction {missing} are missing")
    kind = _infer_kind(slots[(0, 0)], where)
    if typ is not None and typ.removesuffix("Cell") != kind:
        raise ConversionError(f"{where}: declared {typ}, but the weights have {kind}'s gate count "
                              f"({_GATES[kind]} x hidden rows)")
    s0 = slots[(0, 0)]
    has_bias, H = "bias_ih" in s0, s0["weight_hh"].shape[0] // _GATES[kind]
    proj = s0["weight_hr"].shape[0] if "weight_hr" in s0 else 0
    inferred = {"num_layers": num_layers, "bidirectional": D == 2, "bias": has_bias, "hidden_size": H,
                "input_size": s0["weight_ih"].shape[1], "proj_size": proj}
    for k, given in o.items():
        v = inferred.get(k)
        if v is not None and (bool(given) != v if isinstance(v, bool) else given != v):
            raise ConversionError(f"{where}: {k}={given!r}, but the weights say {k}={v!r}")
    nonlin = str(o.get("nonlinearity", "tanh")).lower()
    if nonlin not in ("tanh", "relu") or (nonlin != "tanh" and kind != "RNN"):
        raise ConversionError(f"{where}: nonlinearity={o['nonlinearity']!r}: only RNN layers take "
                              f"'tanh' or 'relu'")
    out = []
    for k in range(num_layers):
        per_dir = [_convert_direction(slots[(k, d)], kind, H, has_bias, proj, where, k, d)
                   for d in range(D)]
        arrays = {f: None if per_dir[0][f] is None else np.stack([x[f] for x in per_dir])
                  for f in per_dir[0]}
        name = (f"{label}.l{k}" if label else f"l{k}") if num_layers > 1 else label
        direction = "bidirectional" if D == 2 else "forward"
        if kind == "LSTM":
            out.append(LSTM(arrays["W"], arrays["R"], arrays["Wb"], arrays["Rb"], proj=arrays["proj"],
                            direction=direction, name=name))
        elif kind == "GRU":
            out.append(GRU(arrays["W"], arrays["R"], arrays["Wb"], arrays["Rb"], linear_before_reset=True,
                           direction=direction, name=name))
        else:
            a = "Relu" if nonlin == "relu" else "Tanh"
            out.append(RNN(arrays["W"], arrays["R"], arrays["Wb"], arrays["Rb"], activations=[a] * D,
                           direction=direction, name=name))
    return out


def _infer_kind(s: dict[str, np.ndarray], where: str) -> str:
    """LSTM, GRU or RNN from the gate rows of weight_ih over the hidden size."""
    if "weight_ih" not in s or "weight_hh" not in s:
        raise ConversionError(f"{where}: weight_ih/weight_hh missing (found {sorted(s)})")
    w_ih, w_hh = s["weight_ih"], s["weight_hh"]
    if w_ih.ndim != 2 or w_hh.ndim != 2 or w_ih.shape[0] != w_hh.shape[0]:
        raise ConversionError(f"{where}: weight_ih {w_ih.shape} and weight_hh {w_hh.shape} do not "
                              f"match (both must be (gates*hidden, .))")
    G = w_ih.shape[0]
    if "weight_hr" in s:
        w_hr = s["weight_hr"]
        if w_hr.ndim != 2 or G != 4 * w_hr.shape[1] or w_hh.shape[1] != w_hr.shape[0]:
            raise ConversionError(f"{where}: weight_hr {w_hr.shape} does not fit an LSTM with "
                                  f"weight_ih {w_ih.shape}, weight_hh {w_hh.shape}")
        return "LSTM"
    H = w_hh.shape[1]
    for kind, g in _GATES.items():
        if G == g * H:
            return kind
    raise ConversionError(f"{where}: weight_ih has {G} rows for hidden size {H}: not 4x (LSTM), "
                          f"3x (GRU) or 1x (RNN)")


def _convert_direction(s: dict, kind: str, H: int, has_bias: bool, proj: int, where: str, k: int,
                       d: int) -> dict:
    tag = f"layer {k}{' reverse' if d else ''}"
    if ("bias_ih" in s) != has_bias or ("bias_hh" in s) != has_bias:
        raise ConversionError(f"{where}: {tag}: bias_ih and bias_hh must both be present or both absent")
    if ("weight_hr" in s) != bool(proj) or not {"weight_ih", "weight_hh"} <= set(s):
        raise ConversionError(f"{where}: {tag}: unexpected parameter set {sorted(s)}")
    G = _GATES[kind] * H
    for n, v in s.items():
        rows = proj if n == "weight_hr" else G
        if v.ndim != (1 if n.startswith("bias") else 2) or v.shape[0] != rows:
            raise ConversionError(f"{where}: {tag}: {n} has shape {v.shape}, expected {rows} rows")
    order = _GATE_ORDER[kind]

    def reorder(a):
        return None if a is None else np.concatenate([a[g * H:(g + 1) * H] for g in order])

    return {"W": reorder(s["weight_ih"]), "R": reorder(s["weight_hh"]),
            "Wb": reorder(s.get("bias_ih")), "Rb": reorder(s.get("bias_hh")),
            **({"proj": s.get("weight_hr")} if kind == "LSTM" else {})}
