"""Keras import: a Keras model (config + weights) becomes a Network in ONNX conventions.

Sources: ``.keras`` archives, legacy ``.h5``/``.hdf5`` files (Keras 2 and 3; read by
``files`` with h5py and json, Keras is never imported) and in-memory ``keras.Model``
objects. This module finds the chain of layers to import in the model graph (Sequential, linear
Functional, or ``layers=[...]``) and tracks time order along it; ``layers`` maps each
layer. Only the config JSON is read: nothing from a file is deserialised or run.

Streaming: a layer's output is produced at every frame. ``go_backwards`` becomes
direction="reverse" (outputs at input time positions); Keras emits a go_backwards layer's
sequence in processing order, so the importer tracks the time order through the stack and
refuses a model whose final output would come out time-reversed. A layer with
``return_sequences=False`` is accepted when only per-frame layers follow it: the network's
output at the last frame is Keras's output.
"""

from __future__ import annotations

import importlib
import json
import os
from typing import Any, Callable, Sequence

import numpy as np

from streamlstm.errors import ConversionError, NetworkError
from streamlstm.network import Network

from ..frontend import fold_front_end
from ..normalise import normalise
from .files import WeightList, open_keras_file
from .layers import (FRONT_LAYERS, KNOWN_LAYERS, MODEL_CLASSES, NOOP_LAYERS, PER_FRAME_LAYERS, RECURRENT_LAYERS,
                     WRAPPERS, Ctx, bidirectional, front_end, guess_layer, layer_info, per_frame, recurrent,
                     unwrap_rnn)

WeightFn = Callable[[str], WeightList]


# ---------------------------------------------------------------------------------- entry
def import_keras(source: Any, *, layers: Sequence[str] | None = None, config: Any = None) -> "Network":
    """Import a Keras model as a Network.

    ``source``: a ``.keras``/``.h5``/``.hdf5`` path (or a ``.keras`` directory, or a Keras 3
    ``.weights.h5``) or an in-memory ``keras.Model``. ``layers``: names of a chain of top-level
    layers to import (the Network's input is the first one's input); required for weights-only
    files, whose layer types are then inferred from the weights with Keras's default attributes.
    ``config``: a model config (dict, JSON text or JSON file, as ``model.to_json()`` writes) to
    use with a weights-only file or instead of the file's own.
    """
    if layers is not None:
        if isinstance(layers, str) or not all(isinstance(n, str) for n in layers):
            raise ConversionError("layers= must be a list of layer names")
        layers = list(layers)
        if not layers:
            raise ConversionError("layers= is empty")
    if _is_keras_model(source):
        if config is not None:
            raise ConversionError("config= is for files; an in-memory keras.Model brings its own config")
        return _import_model_object(source, layers)
    if not isinstance(source, (str, os.PathLike)):
        raise ConversionError(f"import_keras: expected a path or a keras.Model, got {type(source).__name__}")
    try:
        with open_keras_file(source, config) as kf:
            if kf.config is None and layers is not None:
                known = kf.layer_names()
                missing = [n for n in layers if n not in known]
                if missing:
                    raise ConversionError(f"{source}: no layer named {missing[0]!r} in the weights file; "
                                          f"layers: {known}")
            return _convert(kf.config, kf.keras_version, kf.layer_weights, layers, str(source))
    except (ConversionError, NetworkError):
        raise
    except (OSError, RuntimeError, ValueError, KeyError, TypeError, AttributeError, IndexError) as e:
        if _raised_in_h5py(e):
            raise ConversionError(f"{source}: damaged HDF5 data ({type(e).__name__}: {e})") from None
        if isinstance(e, (KeyError, TypeError, AttributeError, IndexError)):
            # a config value of the wrong JSON type (a string where a layer dict belongs, ...)
            raise ConversionError(f"{source}: malformed Keras config ({type(e).__name__}: {e})") from None
        raise


def _raised_in_h5py(e: BaseException) -> bool:
    """True when the exception comes from inside h5py (a damaged file), not from this converter."""
    tb = e.__traceback__
    while tb is not None:
        if f"h5py{os.sep}" in tb.tb_frame.f_code.co_filename:
            return True
        tb = tb.tb_next
    return False


def _keras_root(obj: Any) -> str | None:
    """The Keras package ("keras", "tf_keras", "tensorflow") a model class derives from."""
    for cls in type(obj).__mro__:
        root = (cls.__module__ or "").split(".")[0]
        if root in ("keras", "tf_keras", "tensorflow"):
            return root
    return None


def _is_keras_model(obj: Any) -> bool:
    return _keras_root(obj) is not None and hasattr(obj, "get_weights") and hasattr(obj, "layers")


def _import_model_object(model: Any, layers: list[str] | None) -> Network:
    """An in-memory Keras model: its serialised config and get_weights() of each layer."""
    kmod = importlib.import_module(_keras_root(model))
    if kmod.__name__ == "tensorflow":
        kmod = kmod.keras
    version = getattr(kmod, "__version__", None)
    src = f"keras model {getattr(model, 'name', '')!r}"
    all_layers = {}
    for layer in model.layers:
        all_layers.setdefault(layer.name, layer)

    def weights(name: str) -> WeightList:
        layer = all_layers.get(name)
        if layer is None:
            return []
        names = [getattr(w, "path", None) or getattr(w, "name", str(i)) for i, w in enumerate(layer.weights)]
        return [(n, np.asarray(v, dtype=np.float64)) for n, v in zip(names, layer.get_weights())]

    config = _serialize(kmod, model)
    if config.get("class_name") not in MODEL_CLASSES or not isinstance(config.get("config"), dict) \
            or "layers" not in config["config"]:
        if layers is None:
            raise ConversionError(f"{src}: a subclassed model ({type(model).__name__}) has no layer graph to "
                                  f"read; pass layers=[...] naming the chain of layers to import")
        missing = [n for n in layers if n not in all_layers]
        if missing:
            raise ConversionError(f"{src}: no layer named {missing[0]!r}; layers: {sorted(all_layers)}")
        config = {"class_name": "Sequential",
                  "config": {"name": getattr(model, "name", ""),
                             "layers": [_serialize(kmod, all_layers[n]) for n in layers]}}
    return _convert(config, version, weights, layers, src)


def _serialize(kmod: Any, obj: Any) -> dict:
    saving = getattr(kmod, "saving", None)
    if saving is not None and hasattr(saving, "serialize_keras_object"):
        try:
            cfg = saving.serialize_keras_object(obj)
            if isinstance(cfg, dict):
                return _as_json(cfg)
        except Exception:  # noqa: BLE001 - fall back to get_config below
            pass
    try:
        return _as_json({"class_name": type(obj).__name__, "config": obj.get_config()})
    except Exception as e:  # noqa: BLE001
        raise ConversionError(f"keras object {getattr(obj, 'name', obj)!r}: get_config() failed ({e})") from None


def _as_json(cfg: dict) -> dict:
    """Round-trip through JSON so that an in-memory config looks exactly like a file's (tuples -> lists)."""
    return json.loads(json.dumps(cfg, default=str))


# ---------------------------------------------------------------------------------- model graph
def _convert(config: dict | None, version: str | None, weights: WeightFn, layers: list[str] | None,
             src: str) -> Network:
    ctx = Ctx(src, _major(version, src), version)
    if config is None:
        if layers is None:
            raise ConversionError(f"{src}: weights-only file (no model config): pass layers=[...] naming the "
                                  f"layers to import in order, or config=... with the model's JSON config")
        chain = [guess_layer(n, weights(n), ctx) for n in layers]
        name = ""
    else:
        chain, name = _chain(config, layers, ctx)
    ir = _convert_chain(chain, weights, ctx)
    if not ir:
        raise ConversionError(f"{src}: nothing to import (only no-op layers)")
    input_size = None
    if not hasattr(ir[0], "input_size"):
        input_size = _declared_input_size(chain)
        if input_size is None:
            raise ConversionError(f"{src}: cannot tell the input width (the first layer is an activation and no "
                                  f"input shape is declared)")
    return normalise(fold_front_end(ir, src), source=src, input_size=input_size, name=name)


def _major(version: str | None, src: str) -> int | None:
    if not version:
        return None
    head = str(version).strip().split(".")[0]
    if not head.isdigit():
        return None
    major = int(head)
    if major < 2:
        raise ConversionError(f"{src}: written by Keras {version}; Keras 1 files are not supported")
    return 2 if major == 2 else 3


def _chain(config: dict, layers: list[str] | None, ctx: Ctx) -> tuple[list[dict], str]:
    """The ordered top-level layer dicts to convert (a linear chain)."""
    if not isinstance(config, dict):
        raise ConversionError(f"{ctx.source}: model config is not a JSON object")
    cls = config.get("class_name")
    body = config.get("config")
    if cls == "Sequential" and isinstance(body, list):  # Keras 2.0/2.1 Sequential
        body = {"layers": body}
    if cls not in MODEL_CLASSES or not isinstance(body, dict) or not isinstance(body.get("layers"), list):
        if config.get("class_name") in KNOWN_LAYERS | {"Lambda"} or "module" in config:
            layer_info(config, ctx)
        raise ConversionError(f"{ctx.source}: model class {cls!r} is not Sequential or Functional "
                              f"(subclassed models cannot be read from a file)")
    all_layers = body["layers"]
    name = body.get("name", "")
    by_name: dict[str, dict] = {}
    for d in all_layers:
        if isinstance(d, dict):
            n = (d.get("config") or {}).get("name") if isinstance(d.get("config"), dict) else None
            by_name[str(n or d.get("name"))] = d
    if layers is not None:
        missing = [n for n in layers if n not in by_name]
        if missing:
            raise ConversionError(f"{ctx.source}: no layer named {missing[0]!r}; layers: {list(by_name)}")
    if cls == "Sequential":
        return _sequential_chain(all_layers, layers, ctx), name
    return _functional_chain(body, by_name, layers, ctx), name


def _sequential_chain(seq: list, layers: list[str] | None, ctx: Ctx) -> list[dict]:
    if layers is None:
        return list(seq)
    names = [_name_of(d) if isinstance(d, dict) else "" for d in seq]
    idx = [names.index(n) for n in layers]
    for a, b, na, nb in zip(idx, idx[1:], layers, layers[1:]):
        if b <= a:
            raise ConversionError(f"{ctx.source}: layers=[...]: {nb!r} does not follow {na!r} in the model")
        for d in seq[a + 1:b]:
            _require_noop(d, ctx, na, nb)
    return [seq[i] for i in idx]


def _functional_chain(body: dict, by_name: dict[str, dict], layers: list[str] | None, ctx: Ctx) -> list[dict]:
    """Follow single-input links back from the output (or from each named layer to the previous one)."""
    if layers is None:
        outs = _tensor_refs(body.get("output_layers"))
        ins = _tensor_refs(body.get("input_layers"))
        if len(outs) != 1 or len(ins) != 1:
            raise ConversionError(f"{ctx.source}: a Functional model with {len(ins)} inputs and {len(outs)} outputs "
                                  f"is not a linear chain; pass layers=[...]")
        chain = [_layer_ref(by_name, outs[0], ctx)]
        while _name_of(chain[-1]) != ins[0][0]:
            if len(chain) > len(by_name):
                raise ConversionError(f"{ctx.source}: cycle in the layer graph at {_name_of(chain[-1])!r}")
            chain.append(_layer_ref(by_name, _single_parent(chain[-1], ctx), ctx))
        return chain[::-1]
    chain = [by_name[layers[0]]]
    for prev, nxt in zip(layers, layers[1:]):
        cur = by_name[nxt]
        for _ in range(len(by_name) + 1):
            if not cur.get("inbound_nodes"):
                raise ConversionError(f"{ctx.source}: layers=[...]: {nxt!r} does not follow {prev!r} in the model")
            parent = _layer_ref(by_name, _single_parent(cur, ctx), ctx)
            if _name_of(parent) == prev:
                break
            pcls = layer_info(parent, ctx)[0]
            if pcls not in NOOP_LAYERS:
                raise ConversionError(f"{ctx.source}: layers=[...]: {nxt!r} does not follow {prev!r}: its input "
                                      f"comes from {_name_of(parent)!r} ({pcls}); name every layer of the chain "
                                      f"(only no-op layers may be left out)")
            cur = parent
        else:
            raise ConversionError(f"{ctx.source}: cycle in the layer graph at {nxt!r}")
        chain.append(by_name[nxt])
    return chain


def _name_of(d: dict) -> str:
    cfg = d.get("config") if isinstance(d.get("config"), dict) else {}
    return str(cfg.get("name") or d.get("name"))


def _require_noop(d: dict, ctx: Ctx, a: str, b: str) -> None:
    cls, _, n = layer_info(d, ctx)
    if cls not in NOOP_LAYERS:
        raise ConversionError(f"{ctx.source}: layers=[...]: layer {n!r} ({cls}) lies between {a!r} and {b!r}; "
                              f"name it too or choose a contiguous chain")


def _tensor_refs(v: Any) -> list[tuple[str, int, int]]:
    """Normalise ``[name, node, tensor]`` or a list of them."""
    if not isinstance(v, list):
        return []
    if len(v) >= 1 and isinstance(v[0], str):
        v = [v]
    out = []
    for r in v:
        if isinstance(r, list) and len(r) >= 3 and isinstance(r[0], str):
            out.append((r[0], int(r[1]), int(r[2])))
    return out


def _layer_ref(by_name: dict, ref: tuple[str, int, int], ctx: Ctx) -> dict:
    if ref[0] not in by_name:
        raise ConversionError(f"{ctx.source}: layer graph refers to unknown layer {ref[0]!r}")
    return by_name[ref[0]]


def _single_parent(d: dict, ctx: Ctx) -> tuple[str, int, int]:
    """The one tensor feeding layer ``d`` (Keras 2 and Keras 3 inbound_nodes forms)."""
    name = _name_of(d)
    nodes = d.get("inbound_nodes") or []
    if len(nodes) != 1:
        raise ConversionError(f"{ctx.source}: layer {name!r} ({d.get('class_name')}) is called {len(nodes)} times "
                              f"in the graph; only linear chains are supported")
    refs = _node_tensors(nodes[0])
    if len(refs) != 1:
        raise ConversionError(f"{ctx.source}: layer {name!r} ({d.get('class_name')}) has {len(refs)} inputs; only "
                              f"linear chains are supported")
    if refs[0][2] != 0 or refs[0][1] != 0:
        raise ConversionError(f"{ctx.source}: layer {name!r} reads output {refs[0][2]} (node {refs[0][1]}) of "
                              f"{refs[0][0]!r}; only the main output of a single call is supported")
    return refs[0]


def _node_tensors(node: Any) -> list[tuple[str, int, int]]:
    if isinstance(node, dict):  # Keras 3: {"args": [...], "kwargs": {...}}
        found: list[tuple[str, int, int]] = []

        def visit(o: Any) -> None:
            if isinstance(o, dict):
                if o.get("class_name") == "__keras_tensor__":
                    h = (o.get("config") or {}).get("keras_history")
                    if isinstance(h, list) and len(h) >= 3:
                        found.append((str(h[0]), int(h[1]), int(h[2])))
                    return
                for v in o.values():
                    visit(v)
            elif isinstance(o, list):
                for v in o:
                    visit(v)

        visit(node.get("args"))
        visit(node.get("kwargs"))
        return found
    if isinstance(node, list):  # Keras 2: [[name, node, tensor, kwargs], ...]
        out = []
        for r in node:
            if isinstance(r, list) and len(r) >= 3 and isinstance(r[0], str):
                out.append((r[0], int(r[1]), int(r[2])))
                if len(r) > 3 and isinstance(r[3], dict) and r[3].get("initial_state") is not None:
                    out.append(("initial_state", 0, 0))
        return out
    return []


def _declared_input_size(chain: list[dict]) -> int | None:
    """The feature width declared by the chain's first layer (InputLayer shape or build_config)."""
    d = chain[0] if chain and isinstance(chain[0], dict) else {}
    cfg = d.get("config") if isinstance(d.get("config"), dict) else {}
    build = d.get("build_config") if isinstance(d.get("build_config"), dict) else {}
    for shape in (cfg.get("batch_shape"), cfg.get("batch_input_shape"), build.get("input_shape")):
        if isinstance(shape, list) and shape and isinstance(shape[-1], int) and shape[-1] > 0:
            return shape[-1]
    return None


# ---------------------------------------------------------------------------------- layers
def _convert_chain(chain: list[dict], weights: WeightFn, ctx: Ctx) -> list:
    out: list = []
    flipped = False          # Keras's sequence is time-reversed relative to the input
    flipper = ("", "")       # (name, class) of the layer that last reversed it
    ended_by = ""            # a return_sequences=False layer already seen
    for d in chain:
        cls, cfg, name = layer_info(d, ctx)
        if cls in MODEL_CLASSES:
            raise ctx.err(name, cls, "nested models are not supported; import the inner model on its own")
        if cls not in KNOWN_LAYERS:
            raise ctx.err(name, cls, "layer type not supported (supported: " + ", ".join(
                sorted(RECURRENT_LAYERS | PER_FRAME_LAYERS | WRAPPERS | FRONT_LAYERS)) + ", no-op layers); to skip "
                "a front end, "
                "pass layers=[...] naming the layers to import")
        w = weights(name)
        if cls in NOOP_LAYERS:
            continue
        if cls in RECURRENT_LAYERS or cls == "Bidirectional":
            if ended_by:
                raise ctx.err(name, cls, f"follows {ended_by!r}, which has return_sequences=False: a recurrent "
                                         f"layer after a sequence has been reduced to its last step cannot stream")
            if cls == "Bidirectional":
                if flipped:
                    raise ctx.err(name, cls, f"its input is time-reversed by go_backwards in {flipper[0]!r}; a "
                                             f"Bidirectional layer on a reversed sequence is not supported")
                layer, seqs = bidirectional(cfg, name, w, ctx)
            else:
                kind, ucfg = unwrap_rnn(cls, cfg, name, ctx)
                seqs = bool(ucfg.get("return_sequences", False))
                reverse = bool(ucfg.get("go_backwards", False)) != flipped
                if reverse and not seqs:
                    raise ctx.err(name, cls, "go_backwards with return_sequences=False runs backwards in time, so "
                                             "Keras's single output is the network's output at the first frame, "
                                             "not the last; not supported")
                layer = recurrent(kind, ucfg, name, w, ctx, "reverse" if reverse else "forward")
                if reverse != flipped:
                    flipper = (name, cls)
                flipped = reverse
            if not seqs:
                ended_by = name
            out.append(layer)
        elif cls in FRONT_LAYERS:
            if cls == "Embedding" and out:
                raise ctx.err(name, cls, "an Embedding reads token ids, so it must be the first layer")
            if cls in ("Conv1D", "Convolution1D"):
                if ended_by:
                    raise ctx.err(name, cls, f"follows {ended_by!r}, which has return_sequences=False: a "
                                             f"convolution over time needs the whole sequence")
                if flipped:
                    raise ctx.err(name, cls, f"its input is time-reversed by go_backwards in {flipper[0]!r}; "
                                             f"not supported")
            out.extend(front_end(cls, cfg, name, w, ctx))
        elif cls == "TimeDistributed":
            inner = cfg.get("layer")
            icls, icfg, iname = layer_info(inner, ctx, f" inside {name!r}")
            if icls in NOOP_LAYERS:
                continue
            if icls not in PER_FRAME_LAYERS:
                raise ctx.err(name, cls, f"TimeDistributed({icls}) is not supported; only Dense/activations")
            out.extend(per_frame(icls, icfg, name, w, ctx))
        else:
            out.extend(per_frame(cls, cfg, name, w, ctx))
    if flipped:
        raise ctx.err(*flipper, "go_backwards: Keras emits this layer's sequence in reversed time order and no "
                                               "later layer restores it, so the model's output would be "
                                               "time-reversed; not expressible per frame")
    return out


