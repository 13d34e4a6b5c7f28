"""Mutations of valid model files, for the loader fuzzers (tests and scripts/reliability.py).

Three levels, from blind to format-aware:

- ``apply_ops(data, ops)``: byte operations (flip, truncate, insert, delete, overwrite with an
  interesting value) at positions taken modulo the length;
- ``mutate_member(data, index, ops)``: the same on one member of a zip archive (``.npz``,
  ``.pt`` zip, ``.keras``), re-zipped so the CRC is right and the damage reaches the parser;
- ``mutate_structured(kind, data, rnd)``: edits that keep the container valid and change what it
  says: JSON configs and headers (native ``__config__``, Keras ``config.json`` / ``model_config``,
  the safetensors header), ONNX protobuf fields (dims, data types, attributes, node wiring).

``SEED_KINDS`` maps each seed file in ``corpus/seeds`` to its kind; ``random_mutation`` picks a
level and its arguments from a ``random.Random`` (the reliability script's bulk fuzzing).
"""

from __future__ import annotations

import copy
import io
import json
import random
import struct
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]  # tests/
SEEDS_DIR = HERE / "corpus" / "seeds"
SEED_KINDS = {
    "tiny.npz": "npz", "tiny.onnx": "onnx", "tiny_zip.pt": "pt_zip", "tiny_legacy.pt": "pt_legacy",
    "tiny.safetensors": "safetensors", "tiny.keras": "keras", "tiny.h5": "h5",
}
ZIP_KINDS = ("npz", "pt_zip", "keras")

INTERESTING = [
    b"\x00", b"\xff", b"\x7f", b"\x80", b"\x00\x00\x00\x00", b"\xff\xff\xff\xff", b"\xff" * 8,
    b"\x7f\xff\xff\xff", b"\x00\x00\x00\x80", struct.pack("<Q", 1 << 62), struct.pack("<q", -1),
    struct.pack("<f", float("inf")), struct.pack("<f", float("nan")), struct.pack("<d", 1e308),
    b"9999999999", b"-1", b"[[[[[[[[", b'"', b"\\u0000",
]
JUNK_JSON = [None, True, False, 0, -1, 1 << 31, 1 << 62, -(1 << 63), 10 ** 30, 1e308, float("inf"),
             float("nan"), 0.5, "", "x", "Lambda", "os.system", "../../etc/passwd", [], {}, [1, 2, 3],
             [[]], {"class_name": "Lambda", "config": {}}, {"module": "os", "class_name": "system"}]
JUNK_INTS = [0, 1, -1, 2, 3, 7, 1 << 31, (1 << 31) - 1, 1 << 40, -(1 << 62), (1 << 63) - 1]
JUNK_FLOATS = [0.0, -1.0, 1e30, -1e30, float("inf"), float("-inf"), float("nan"), 1e-45]
JUNK_STRINGS = [b"", b"forward", b"reverse", b"bidirectional", b"sideways", b"Tanh", b"Relu", b"Affine",
                b"Foo", b"\xff\xfe", b"../x", b"LSTM"]
JUNK_OPS = ["LSTM", "GRU", "RNN", "Identity", "Loop", "Scan", "If", "Tile", "ConstantOfShape", "Expand",
            "Reshape", "Transpose", "Concat", "Gemm", "MatMul", "Add", "Foo", ""]


# ---------------------------------------------------------------------------------- bytes
def apply_ops(data: bytes, ops) -> bytes:
    """Apply byte operations in order; each position is taken modulo the current length (+1)."""
    buf = bytearray(data)
    for op in ops:
        kind, pos = op[0], op[1] % (len(buf) + 1)
        if kind == "flip" and buf:
            pos %= len(buf)
            buf[pos] ^= op[2] or 1
        elif kind == "truncate":
            del buf[pos:]
        elif kind == "insert":
            buf[pos:pos] = op[2]
        elif kind == "delete":
            del buf[pos:pos + op[2]]
        elif kind == "overwrite":
            buf[pos:pos + len(op[2])] = op[2]
    return bytes(buf)


def random_ops(rnd: random.Random, size: int, count: int | None = None) -> list[tuple]:
    ops = []
    for _ in range(count or rnd.randint(1, 4)):
        kind = rnd.choice(["flip", "flip", "flip", "truncate", "insert", "delete", "overwrite", "overwrite"])
        pos = rnd.randrange(max(size, 1))
        if kind == "flip":
            ops.append((kind, pos, 1 << rnd.randrange(8) if rnd.random() < 0.7 else rnd.randrange(1, 256)))
        elif kind == "truncate":
            ops.append((kind, pos))
        elif kind == "insert":
            ops.append((kind, pos, rnd.choice([rnd.randbytes(rnd.randint(1, 16)), rnd.choice(INTERESTING)])))
        elif kind == "delete":
            ops.append((kind, pos, rnd.randint(1, 64)))
        else:
            ops.append((kind, pos, rnd.choice(INTERESTING)))
    return ops


# ---------------------------------------------------------------------------------- zip members
def zip_members(data: bytes) -> list[tuple[str, bytes]]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return [(n, zf.read(n)) for n in zf.namelist()]


def make_zip(members: list[tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for name, blob in members:
            zf.writestr(zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0)), blob)
    return buf.getvalue()


def mutate_member(data: bytes, index: int, ops) -> bytes:
    """Byte-mutate member ``index`` (modulo the member count) and re-zip."""
    members = zip_members(data)
    k = index % len(members)
    name, blob = members[k]
    members[k] = (name, apply_ops(blob, ops))
    return make_zip(members)


# ---------------------------------------------------------------------------------- JSON
def _json_slots(obj, out, depth=0):
    """(container, key) of every value in a JSON document."""
    if depth > 50:
        return out
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else ()
    for k, v in items:
        out.append((obj, k))
        _json_slots(v, out, depth + 1)
    return out


def mutate_json(doc, rnd: random.Random, changes: int | None = None):
    """A copy of ``doc`` with 1-3 values replaced, deleted, duplicated or swapped."""
    doc = copy.deepcopy(doc)
    for _ in range(changes or rnd.randint(1, 3)):
        slots = _json_slots(doc, [])
        if not slots:
            return rnd.choice(JUNK_JSON)
        container, key = rnd.choice(slots)
        action = rnd.random()
        if action < 0.6:
            container[key] = copy.deepcopy(rnd.choice(JUNK_JSON))
        elif action < 0.75:
            del container[key]
        elif action < 0.85 and isinstance(container, list):
            container.insert(key, copy.deepcopy(container[key]))
        else:
            other_c, other_k = rnd.choice(slots)
            try:
                container[key] = copy.deepcopy(other_c[other_k])
            except (KeyError, IndexError):
                pass
    return doc


def _dumps(doc) -> bytes:
    return json.dumps(doc).encode()


# ---------------------------------------------------------------------------------- per format
def _npz_config(data: bytes, rnd: random.Random) -> bytes:
    import numpy as np

    members = zip_members(data)
    for i, (name, blob) in enumerate(members):
        if name == "__config__.npy":
            cfg = json.loads(bytes(np.load(io.BytesIO(blob))).decode())
            buf = io.BytesIO()
            np.save(buf, np.frombuffer(_dumps(mutate_json(cfg, rnd)), np.uint8))
            members[i] = (name, buf.getvalue())
    return make_zip(members)


def _npz_array(data: bytes, rnd: random.Random) -> bytes:
    """Replace one .npy member by an array of another shape, dtype or content."""
    import numpy as np

    members = zip_members(data)
    idx = [i for i, (n, _) in enumerate(members) if n != "__config__.npy"]
    i = rnd.choice(idx)
    arr = np.load(io.BytesIO(members[i][1]))
    choice = rnd.randrange(5)
    if choice == 0:
        arr = arr.reshape(-1)[: rnd.randint(0, arr.size)]
    elif choice == 1:
        arr = arr.astype(rnd.choice(["f2", "i8", "u1", "c8", "?", "U3"]))
    elif choice == 2:
        arr = arr.copy()
        arr.reshape(-1)[rnd.randrange(arr.size)] = rnd.choice([np.nan, np.inf, 1e300])
    elif choice == 3:
        arr = np.concatenate([arr, arr], axis=rnd.randrange(arr.ndim))
    else:
        arr = arr[..., None]
    buf = io.BytesIO()
    np.save(buf, arr)
    members[i] = (members[i][0], buf.getvalue())
    return make_zip(members)


def _keras_config(data: bytes, rnd: random.Random) -> bytes:
    members = zip_members(data)
    target = rnd.choice(["config.json", "config.json", "config.json", "metadata.json"])
    for i, (name, blob) in enumerate(members):
        if name == target:
            members[i] = (name, _dumps(mutate_json(json.loads(blob), rnd)))
    return make_zip(members)


def _h5_config(data: bytes, rnd: random.Random) -> bytes:
    import h5py

    buf = io.BytesIO(data)
    with h5py.File(buf, "r+") as f:
        if rnd.random() < 0.7:
            cfg = json.loads(f.attrs["model_config"])
            f.attrs["model_config"] = json.dumps(mutate_json(cfg, rnd))
        else:
            grp = f["model_weights"]
            names = [k for k in grp if "weight_names" in grp[k].attrs]
            g = grp[rnd.choice(names)]
            wn = list(g.attrs["weight_names"])
            op = rnd.randrange(3)
            if op == 0 and wn:
                wn.pop(rnd.randrange(len(wn)))
            elif op == 1 and wn:
                wn.append(wn[0])
            else:
                wn.reverse()
            g.attrs["weight_names"] = wn
    return buf.getvalue()


def _safetensors_header(data: bytes, rnd: random.Random) -> bytes:
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + n])
    raw = _dumps(mutate_json(header, rnd))
    return struct.pack("<Q", len(raw)) + raw + data[8 + n:]


def _onnx_fields(data: bytes, rnd: random.Random) -> bytes:
    import onnx

    m = onnx.ModelProto()
    m.ParseFromString(data)
    g = m.graph
    for _ in range(rnd.randint(1, 3)):
        what = rnd.randrange(8)
        if what == 0 and len(g.initializer):
            t = rnd.choice(g.initializer)
            if len(t.dims):
                t.dims[rnd.randrange(len(t.dims))] = rnd.choice(JUNK_INTS)
            else:
                t.dims.append(rnd.choice(JUNK_INTS))
        elif what == 1 and len(g.initializer):
            rnd.choice(g.initializer).data_type = rnd.randrange(0, 26)
        elif what == 2 and len(g.initializer):
            t = rnd.choice(g.initializer)
            t.raw_data = t.raw_data[: rnd.randrange(len(t.raw_data) + 1)] if rnd.random() < 0.5 else t.raw_data * 2
        elif what == 3:
            node = rnd.choice(g.node)
            if len(node.attribute):
                a = rnd.choice(node.attribute)
                if a.type == onnx.AttributeProto.INT:
                    a.i = rnd.choice(JUNK_INTS)
                elif a.type == onnx.AttributeProto.FLOAT:
                    a.f = rnd.choice(JUNK_FLOATS)
                elif a.type == onnx.AttributeProto.STRING:
                    a.s = rnd.choice(JUNK_STRINGS)
                elif a.type == onnx.AttributeProto.INTS and len(a.ints):
                    a.ints[rnd.randrange(len(a.ints))] = rnd.choice(JUNK_INTS)
                elif a.type == onnx.AttributeProto.FLOATS:
                    a.floats.append(rnd.choice(JUNK_FLOATS))
                elif a.type == onnx.AttributeProto.STRINGS and len(a.strings):
                    a.strings[rnd.randrange(len(a.strings))] = rnd.choice(JUNK_STRINGS)
        elif what == 4:
            rnd.choice(g.node).op_type = rnd.choice(JUNK_OPS)
        elif what == 5:
            node = rnd.choice(g.node)
            names = [o for n in g.node for o in n.output] + [t.name for t in g.initializer] + [i.name for i in g.input] + [""]
            if len(node.input):
                node.input[rnd.randrange(len(node.input))] = rnd.choice(names)
        elif what == 6:
            k = rnd.randrange(len(g.node))
            node = g.node[k]
            if rnd.random() < 0.5:
                del g.node[k]
            else:
                g.node.append(copy.deepcopy(node))
        else:
            vi = rnd.choice(list(g.input) + list(g.output))
            dims = vi.type.tensor_type.shape.dim
            if len(dims):
                dims[rnd.randrange(len(dims))].dim_value = rnd.choice([0, 1, 2, 1 << 40])
    return m.SerializeToString()


STRUCTURED = {
    "npz": [_npz_config, _npz_array],
    "keras": [_keras_config],
    "h5": [_h5_config],
    "safetensors": [_safetensors_header],
    "onnx": [_onnx_fields],
    "pt_zip": [],
    "pt_legacy": [],
}


def mutate_structured(kind: str, data: bytes, rnd: random.Random) -> bytes:
    """A format-aware mutation of ``data`` (a seed of ``kind``); byte ops where none exists."""
    fns = STRUCTURED[kind]
    if not fns:
        if kind in ZIP_KINDS:
            members = zip_members(data)
            pick = next((i for i, (n, _) in enumerate(members) if n.endswith("data.pkl")), 0)
            return mutate_member(data, pick, random_ops(rnd, len(members[pick][1])))
        return apply_ops(data, random_ops(rnd, len(data)))
    return rnd.choice(fns)(data, rnd)


def random_mutation(kind: str, data: bytes, rnd: random.Random) -> tuple[str, bytes]:
    """(level, mutated bytes): a byte, member or structured mutation picked at random."""
    level = rnd.choice(["bytes", "member", "structured", "structured"] if kind in ZIP_KINDS
                       else ["bytes", "structured", "structured"])
    if level == "bytes":
        return level, apply_ops(data, random_ops(rnd, len(data)))
    if level == "member":
        members = zip_members(data)
        k = rnd.randrange(len(members))
        return level, mutate_member(data, k, random_ops(rnd, len(members[k][1])))
    return level, mutate_structured(kind, data, rnd)
