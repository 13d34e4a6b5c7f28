"""Hand-made hostile model files, written into a directory by ``build_all(dir)``.

Each case is a function ``(dir) -> path`` registered with ``@case(format)``; its docstring says
what it attacks. They are deterministic and cheap (seconds together, files under 2 MB), so they are
generated rather than committed. What a careless loader would do with each: allocate the
declared size (huge dimensions, shape bombs, sparse/constant folding bombs), recurse without
end (deep or self-referencing structures, cyclic HDF5 groups, graph cycles), follow a link or
path out of the model's folder, block on a FIFO, or hand an exception other than ValueError to
the caller. The fuzz tests load every one in the sandbox (``loader_sandbox.py``); the cases
listed in ``REFUSAL`` must be refused with a message containing the text given there.
"""

from __future__ import annotations

import io
import json
import os
import struct
import zipfile
from pathlib import Path
from typing import Callable

import numpy as np

HERE = Path(__file__).resolve().parents[1]  # tests/
SEEDS = HERE / "corpus" / "seeds"
CASES: list[tuple[str, str, Callable[[Path], Path]]] = []


def case(fmt: str):
    def register(fn):
        CASES.append((fmt, fn.__name__, fn))
        return fn
    return register


def build_all(directory: Path) -> list[tuple[str, str, Path]]:
    """Write every case under ``directory``; returns (format, case name, path)."""
    out = []
    for fmt, name, fn in CASES:
        d = directory / name
        d.mkdir(parents=True, exist_ok=True)
        out.append((fmt, name, fn(d)))
    return out


# ---------------------------------------------------------------------------------- pickle assembly
PROTO2, STOP, MARK, TUPLE, REDUCE, TUPLE2 = b"\x80\x02", b".", b"(", b"t", b"R", b"\x86"
EMPTY_DICT, EMPTY_LIST, EMPTY_TUPLE, SETITEMS, APPEND, BINPERSID = b"}", b"]", b")", b"u", b"a", b"Q"


def g(module: str, name: str) -> bytes:
    return b"c" + f"{module}\n{name}\n".encode()


def s(text: str) -> bytes:
    raw = text.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw


def n(v: int) -> bytes:
    if 0 <= v < 256:
        return b"K" + bytes([v])
    if -(1 << 31) <= v < (1 << 31):
        return b"J" + struct.pack("<i", v)
    raw = v.to_bytes((v.bit_length() + 8) // 8, "little", signed=True)
    return b"\x8a" + bytes([len(raw)]) + raw


def tup(*items: bytes) -> bytes:
    return MARK + b"".join(items) + TUPLE


def tensor(key: str, numel: int, size, stride, offset: int = 0, storage: str = "FloatStorage") -> bytes:
    """Pickle ops of ``torch._utils._rebuild_tensor_v2`` over storage ``key``."""
    pid = tup(s("storage"), g("torch", storage), s(key), s("cpu"), n(numel)) + BINPERSID
    args = tup(pid, n(offset), tup(*map(n, size)), tup(*map(n, stride)), b"\x89",
               g("collections", "OrderedDict") + EMPTY_TUPLE + REDUCE)
    return g("torch._utils", "_rebuild_tensor_v2") + args + REDUCE


def state_dict(items: dict[str, bytes]) -> bytes:
    return PROTO2 + EMPTY_DICT + MARK + b"".join(s(k) + v for k, v in items.items()) + SETITEMS + STOP


def torch_zip(path: Path, pkl: bytes, records: dict[str, bytes], byteorder: bytes = b"little") -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("archive/data.pkl", pkl)
        zf.writestr("archive/byteorder", byteorder)
        for key, data in records.items():
            zf.writestr(f"archive/data/{key}", data)
        zf.writestr("archive/version", b"3\n")
    return path


def torch_legacy(path: Path, obj_pkl: bytes, records: list[tuple[str, int, bytes]]) -> Path:
    """Legacy container: magic, protocol, sys_info, object, keys, then (numel, bytes) per key."""
    magic = PROTO2 + n(0x1950A86A20F9469CFC6C) + STOP
    proto = PROTO2 + n(1001) + STOP
    info = PROTO2 + EMPTY_DICT + STOP
    keys = PROTO2 + EMPTY_LIST + MARK + b"".join(s(k) for k, _, _ in records) + b"e" + STOP
    body = b"".join(struct.pack("<q", numel) + data for _, numel, data in records)
    path.write_bytes(magic + proto + info + obj_pkl + keys + body)
    return path


def f32(count: int) -> bytes:
    return np.linspace(-0.5, 0.5, count, dtype=np.float32).tobytes()


def lstm_sd(extra: dict[str, bytes] | None = None) -> dict[str, bytes]:
    """Pickle ops of a valid LSTM(3 -> 4) state dict using storages "0".."3"."""
    shapes = {"lstm.weight_ih_l0": (16, 3), "lstm.weight_hh_l0": (16, 4), "lstm.bias_ih_l0": (16,),
              "lstm.bias_hh_l0": (16,)}
    out = {}
    for i, (k, shp) in enumerate(shapes.items()):
        stride = (shp[1], 1) if len(shp) == 2 else (1,)
        out[k] = tensor(str(i), int(np.prod(shp)), shp, stride)
    out.update(extra or {})
    return out


LSTM_RECORDS = {"0": f32(48), "1": f32(64), "2": f32(16), "3": f32(16)}


# ---------------------------------------------------------------------------------- torch
@case("torch")
def torch_self_referencing_list(d: Path) -> Path:
    """A list holding itself 1000 times (3 KB): a walker without a visited set runs ~1000^depth steps."""
    pkl = PROTO2 + EMPTY_LIST + b"q\x00" + MARK + b"h\x00" * 1000 + b"e" + STOP
    return torch_zip(d / "selfref.pt", pkl, {})


@case("torch")
def torch_shared_fanout(d: Path) -> Path:
    """Billion laughs: 30 levels of a dict holding the previous level 10 times (memo-shared)."""
    ops = PROTO2 + EMPTY_DICT + b"q\x00"
    for level in range(1, 31):
        ops += EMPTY_DICT + MARK + b"".join(s(f"k{j}") + b"h" + bytes([level - 1]) for j in range(10)) + SETITEMS
        ops += b"q" + bytes([level])
    return torch_zip(d / "laughs.pt", ops + STOP, {})


@case("torch")
def torch_deep_nesting(d: Path) -> Path:
    """A list nested 200000 deep: recursion limits of whatever walks it afterwards."""
    pkl = PROTO2 + EMPTY_LIST * 200000 + APPEND * 199999 + STOP
    return torch_zip(d / "deep.pt", pkl, {})


@case("torch")
def torch_expanded_stride0(d: Path) -> Path:
    """A (2^31, 2^31) tensor over one element (stride 0): materialising it needs 16 EiB."""
    pkl = state_dict(lstm_sd({"fc.weight": tensor("9", 1, (1 << 31, 1 << 31), (0, 0))}))
    return torch_zip(d / "stride0.pt", pkl, {**LSTM_RECORDS, "9": f32(1)})


@case("torch")
def torch_huge_numel_short_record(d: Path) -> Path:
    """A storage declaring 2^40 floats whose record holds 16 bytes."""
    pkl = state_dict(lstm_sd({"fc.weight": tensor("9", 1 << 40, (1 << 20, 1 << 20), (1 << 20, 1))}))
    return torch_zip(d / "numel.pt", pkl, {**LSTM_RECORDS, "9": f32(4)})


@case("torch")
def torch_overlapping_view(d: Path) -> Path:
    """Size and stride reaching past the end of the storage."""
    pkl = state_dict(lstm_sd({"fc.weight": tensor("9", 8, (2, 4), (4, 1), offset=6)}))
    return torch_zip(d / "overlap.pt", pkl, {**LSTM_RECORDS, "9": f32(8)})


@case("torch")
def torch_negative_and_float_sizes(d: Path) -> Path:
    """Negative strides and a float size."""
    bad = g("torch._utils", "_rebuild_tensor_v2") + tup(
        tup(s("storage"), g("torch", "FloatStorage"), s("9"), s("cpu"), n(8)) + BINPERSID,
        n(0), tup(n(2), b"G" + struct.pack(">d", 4.0)), tup(n(-4), n(1)), b"\x89", EMPTY_DICT) + REDUCE
    return torch_zip(d / "neg.pt", state_dict(lstm_sd({"fc.weight": bad})), {**LSTM_RECORDS, "9": f32(8)})


@case("torch")
def torch_missing_record(d: Path) -> Path:
    """The pickle names storage "9"; the archive has no data/9."""
    pkl = state_dict(lstm_sd({"fc.weight": tensor("9", 8, (2, 4), (4, 1))}))
    return torch_zip(d / "missing.pt", pkl, LSTM_RECORDS)


@case("torch")
def torch_bad_byteorder(d: Path) -> Path:
    """byteorder record holding garbage."""
    return torch_zip(d / "byteorder.pt", state_dict(lstm_sd()), LSTM_RECORDS, byteorder=b"middle\xff")


@case("torch")
def torch_bigendian(d: Path) -> Path:
    """A valid big-endian checkpoint (loads; weights byte-swapped on read)."""
    recs = {k: np.frombuffer(v, "<f4").astype(">f4").tobytes() for k, v in LSTM_RECORDS.items()}
    return torch_zip(d / "big.pt", state_dict(lstm_sd()), recs, byteorder=b"big")


@case("torch")
def torch_binbytes8_huge(d: Path) -> Path:
    """BINBYTES8 declaring 2^62 bytes inside data.pkl."""
    pkl = PROTO2 + b"\x8e" + struct.pack("<Q", 1 << 62) + b"abc" + STOP
    return torch_zip(d / "binbytes8.pt", pkl, {})


@case("torch")
def torch_legacy_binbytes8_huge(d: Path) -> Path:
    """Legacy file whose object pickle declares 2^62 bytes (read straight from the file)."""
    obj = PROTO2 + b"\x8e" + struct.pack("<Q", 1 << 62) + b"abc" + STOP
    return torch_legacy(d / "legacy_binbytes8.pt", obj, [])


@case("torch")
def torch_legacy_long4_huge(d: Path) -> Path:
    """Legacy file: a LONG4 integer of 2^31-1 bytes declared in the magic-number pickle."""
    (d / "long4.pt").write_bytes(PROTO2 + b"\x8b" + struct.pack("<i", (1 << 31) - 1) + b"\x00" * 16)
    return d / "long4.pt"


@case("torch")
def torch_legacy_huge_numel(d: Path) -> Path:
    """Legacy file: a storage of 2^40 elements, declared the same in the pickle and the record header."""
    obj = state_dict(lstm_sd({"fc.weight": tensor("9", 1 << 40, (1 << 20, 1 << 20), (1 << 20, 1))}))
    recs = [(k, len(v) // 4, v) for k, v in LSTM_RECORDS.items()] + [("9", 1 << 40, f32(4))]
    return torch_legacy(d / "legacy_numel.pt", obj, recs)


@case("torch")
def torch_legacy_truncated(d: Path) -> Path:
    """Legacy file cut in the middle of a storage."""
    obj = state_dict(lstm_sd())
    recs = [(k, len(v) // 4, v) for k, v in LSTM_RECORDS.items()]
    p = torch_legacy(d / "legacy_trunc.pt", obj, recs)
    p.write_bytes(p.read_bytes()[:-40])
    return p


@case("torch")
def torch_object_ndarray(d: Path) -> Path:
    """A pickled numpy array of dtype object (its elements would be unpickled objects)."""
    arr = (g("numpy.core.multiarray", "_reconstruct") + tup(g("numpy", "ndarray"), tup(n(0)), b"C\x01b") + REDUCE
           + tup(n(1), tup(n(1)), g("numpy", "dtype") + tup(s("O8"), b"\x89", b"\x88") + REDUCE
                 + tup(n(3), s("|"), b"N", b"N", b"N", n(-1), n(-1), n(63)) + b"b", b"\x89",
                 EMPTY_LIST + g("posix", "system") + tup(s("true")) + REDUCE + APPEND) + b"b")
    return torch_zip(d / "objarray.pt", state_dict(lstm_sd({"x": arr})), LSTM_RECORDS)


@case("torch")
def torch_inst_protocol0(d: Path) -> Path:
    """Protocol-0 INST opcode naming os.system."""
    (d / "inst.pth").write_bytes(b"\x80\x02(S'touch \"$STREAMLSTM_FUZZ_MARKER\"'\nios\nsystem\n.")
    return d / "inst.pth"


@case("torch")
def torch_storage_called(d: Path) -> Path:
    """An allowed class reference (torch.FloatStorage) used as a callable with REDUCE."""
    pkl = state_dict({"x": g("torch", "FloatStorage") + tup(n(10)) + REDUCE})
    return torch_zip(d / "callstorage.pt", pkl, {})


@case("torch")
def torch_torchscript(d: Path) -> Path:
    """A TorchScript-like archive (constants.pkl, code/), not a checkpoint."""
    with zipfile.ZipFile(d / "script.pt", "w") as zf:
        zf.writestr("archive/constants.pkl", PROTO2 + EMPTY_TUPLE + STOP)
        zf.writestr("archive/code/__torch__.py", "def forward(self): import os; os.system('true')\n")
    return d / "script.pt"


@case("torch")
def torch_many_pkl(d: Path) -> Path:
    """Two data.pkl records in one archive."""
    with zipfile.ZipFile(d / "two.pt", "w") as zf:
        zf.writestr("a/data.pkl", state_dict({}))
        zf.writestr("b/data.pkl", state_dict({}))
    return d / "two.pt"


# ---------------------------------------------------------------------------------- safetensors
def safetensors_file(path: Path, header, data: bytes = b"", header_len: int | None = None) -> Path:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw) if header_len is None else header_len) + raw + data)
    return path


@case("torch")
def st_deep_json(d: Path) -> Path:
    """A header of 100000 nested JSON arrays."""
    return safetensors_file(d / "deep.safetensors", b"[" * 100000 + b"]" * 100000)


@case("torch")
def st_deep_json_object(d: Path) -> Path:
    """A header whose metadata nests 100000 objects."""
    return safetensors_file(d / "deepobj.safetensors", b'{"__metadata__":' + b'{"a":' * 100000 + b"1" + b"}" * 100001)


@case("torch")
def st_huge_header_len(d: Path) -> Path:
    """Header length 2^63 in a 20-byte file."""
    return safetensors_file(d / "hlen.safetensors", b"{}", header_len=1 << 63)


@case("torch")
def st_huge_shape(d: Path) -> Path:
    """A tensor declaring shape [2^31, 2^31] over 16 bytes."""
    h = {"lstm.weight_ih_l0": {"dtype": "F32", "shape": [1 << 31, 1 << 31], "data_offsets": [0, 16]}}
    return safetensors_file(d / "shape.safetensors", h, bytes(16))


@case("torch")
def st_offsets_outside(d: Path) -> Path:
    """data_offsets beyond the buffer, reversed, and negative."""
    h = {"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 1 << 40]},
         "b": {"dtype": "F32", "shape": [4], "data_offsets": [16, 0]},
         "c": {"dtype": "F32", "shape": [4], "data_offsets": [-16, 0]}}
    return safetensors_file(d / "offsets.safetensors", h, bytes(16))


@case("torch")
def st_wrong_types(d: Path) -> Path:
    """Shapes and offsets of the wrong JSON types, an unknown dtype, a non-object entry."""
    h = {"a": {"dtype": "F32", "shape": "4", "data_offsets": [0, 16]},
         "b": {"dtype": "Q99", "shape": [4], "data_offsets": [0, 16]},
         "c": [1, 2, 3], "d": {"dtype": "F32", "shape": [4.0], "data_offsets": [0.0, 16.0]}}
    return safetensors_file(d / "types.safetensors", h, bytes(16))


@case("torch")
def st_nan_weights(d: Path) -> Path:
    """A valid LSTM whose weights hold NaN."""
    h, off, data = {}, 0, b""
    for k, shp in (("lstm.weight_ih_l0", [16, 3]), ("lstm.weight_hh_l0", [16, 4])):
        raw = np.full(shp, np.nan, np.float32).tobytes()
        h[k] = {"dtype": "F32", "shape": shp, "data_offsets": [off, off + len(raw)]}
        off, data = off + len(raw), data + raw
    return safetensors_file(d / "nan.safetensors", h, data)


# ---------------------------------------------------------------------------------- native .npz
def npz_with(path: Path, config=None, arrays: dict[str, bytes] | None = None, raw_config: bytes | None = None) -> Path:
    """Rewrite the seed .npz with another __config__ and/or .npy members."""
    with zipfile.ZipFile(SEEDS / "tiny.npz") as zf:
        members = {m: zf.read(m) for m in zf.namelist()}
    if config is not None or raw_config is not None:
        text = raw_config if raw_config is not None else json.dumps(config).encode()
        buf = io.BytesIO()
        np.save(buf, np.frombuffer(text, np.uint8))
        members["__config__.npy"] = buf.getvalue()
    members.update(arrays or {})
    with zipfile.ZipFile(path, "w") as zf:
        for m, data in members.items():
            zf.writestr(m, data)
    return path


def seed_config() -> dict:
    with np.load(SEEDS / "tiny.npz") as z:
        return json.loads(bytes(z["__config__"]).decode())


def npy_header(shape, descr: str = "<f8") -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": shape})
    return buf.getvalue()


def _cfg(**change) -> dict:
    c = seed_config()
    c.update(change)
    return c


def _layer_cfg(i: int, **change) -> dict:
    c = seed_config()
    c["layers"][i].update(change)
    return c


@case("native")
def npz_config_not_object(d: Path) -> Path:
    """__config__ is a JSON list."""
    return npz_with(d / "list.npz", [1, 2, 3])


@case("native")
def npz_config_missing_layers(d: Path) -> Path:
    """__config__ without "layers" and "input_size"."""
    return npz_with(d / "nolayers.npz", {"format": "streamlstm-network", "version": 1})


@case("native")
def npz_layer_not_object(d: Path) -> Path:
    """A layer entry that is a number."""
    return npz_with(d / "layer5.npz", _cfg(layers=[5]))


@case("native")
def npz_activation_wrong_type(d: Path) -> Path:
    """Activations given as a number and as unknown names."""
    return npz_with(d / "act.npz", _layer_cfg(0, activations=5))


@case("native")
def npz_activation_unknown(d: Path) -> Path:
    """An activation name that does not exist, with an infinite alpha."""
    return npz_with(d / "actname.npz", _layer_cfg(1, activation=["os.system", 1e308 * 10, None]))


@case("native")
def npz_activation_infinite_alpha(d: Path) -> Path:
    """Activation parameters that are not finite: Affine(alpha=inf) as the LSTM's cell activation and
    LeakyRelu(alpha=nan) on the Dense (JSON ``Infinity`` / ``NaN``)."""
    c = _layer_cfg(1, activation=["LeakyRelu", float("nan"), None])
    c["layers"][0]["activations"] = [["Sigmoid", None, None], ["Affine", float("inf"), 0.0], ["Tanh", None, None]]
    return npz_with(d / "alpha.npz", c)


@case("native")
def npz_input_size_junk(d: Path) -> Path:
    """input_size as a string."""
    return npz_with(d / "isize.npz", _cfg(input_size="3; import os"))


@case("native")
def npz_input_size_huge(d: Path) -> Path:
    """input_size 2^62 with an Activation first layer (no weights say otherwise)."""
    return npz_with(d / "isize_huge.npz", _cfg(input_size=1 << 62, layers=[{"kind": "Activation",
                                                                             "activation": ["Tanh", None, None]}]))


@case("native")
def npz_unknown_field(d: Path) -> Path:
    """A layer config with an unknown keyword and a wrong-typed direction."""
    return npz_with(d / "field.npz", _layer_cfg(0, direction=7, __class__="x"))


@case("native")
def npz_config_deep(d: Path) -> Path:
    """__config__ nested 100000 levels deep."""
    return npz_with(d / "deep.npz", raw_config=b"[" * 100000 + b"]" * 100000)


@case("native")
def npz_config_not_utf8(d: Path) -> Path:
    """__config__ bytes that are not UTF-8."""
    return npz_with(d / "utf8.npz", raw_config=b"\xff\xfe{\x00")


@case("native")
def npz_object_array(d: Path) -> Path:
    """A weight stored as a pickled object array (np.load must not unpickle it)."""
    buf = io.BytesIO()
    np.save(buf, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    return npz_with(d / "object.npz", arrays={"layer0.W.npy": buf.getvalue()})


@case("native")
def npz_huge_declared_array(d: Path) -> Path:
    """A .npy member declaring 2^40 float64 and holding 16 bytes."""
    return npz_with(d / "huge.npz", arrays={"layer0.W.npy": npy_header((1 << 40,)) + bytes(16)})


@case("native")
def npz_nan_weights(d: Path) -> Path:
    """Weights of the right shape holding NaN."""
    with np.load(SEEDS / "tiny.npz") as z:
        w = z["layer0.W"].copy()
    w[0, 0, 0] = np.nan
    buf = io.BytesIO()
    np.save(buf, w)
    return npz_with(d / "nan.npz", arrays={"layer0.W.npy": buf.getvalue()})


@case("native")
def npz_wrong_shape(d: Path) -> Path:
    """A recurrent weight of the wrong shape."""
    buf = io.BytesIO()
    np.save(buf, np.zeros((1, 16, 5)))
    return npz_with(d / "shape.npz", arrays={"layer0.R.npy": buf.getvalue()})


@case("native")
def npz_empty_file(d: Path) -> Path:
    """Zero bytes."""
    (d / "empty.npz").write_bytes(b"")
    return d / "empty.npz"


# ---------------------------------------------------------------------------------- ONNX
def _onnx_seed():
    import onnx

    return onnx.load(str(SEEDS / "tiny.onnx"))


def _raw_tensor(name: str, data_type: int, dims, raw: bytes):
    """A TensorProto with any dims and raw bytes (onnx.helper refuses inconsistent ones)."""
    from onnx import TensorProto

    t = TensorProto(name=name, data_type=data_type, dims=list(dims))
    t.raw_data = raw
    return t


def _save(model, path: Path) -> Path:
    path.write_bytes(model.SerializeToString())
    return path


def _mini_graph(nodes, inits, out_shape=(1, 2)):
    """x [1, 2] -> nodes -> y."""
    from onnx import TensorProto, helper

    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(out_shape))], initializer=inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def _lstm_with_weight(node_inputs_from: str):
    """The seed model with its LSTM W replaced by the tensor named ``node_inputs_from``."""
    m = _onnx_seed()
    lstm = next(nd for nd in m.graph.node if nd.op_type == "LSTM")
    lstm.input[1] = node_inputs_from
    return m


def _external(path: Path, location: str, length: int = 192, offset: int = 0) -> Path:
    """The seed model with its LSTM W (1x16x3 floats = 192 bytes) kept in external data."""
    from onnx import TensorProto

    m = _onnx_seed()
    t = next(t for t in m.graph.initializer if t.name.startswith("LSTM0_W"))
    t.ClearField("raw_data")
    del t.float_data[:]
    t.data_location = TensorProto.EXTERNAL
    for k, v in (("location", location), ("offset", str(offset)), ("length", str(length))):
        e = t.external_data.add()
        e.key, e.value = k, v
    return _save(m, path)


@case("onnx")
def onnx_external_symlink_escape(d: Path) -> Path:
    """External data through a symlink inside the folder that points outside it."""
    outside = d / "outside.bin"
    outside.write_bytes(bytes(192))
    (d / "model").mkdir(exist_ok=True)
    link = d / "model" / "weights.bin"
    if not link.is_symlink():
        link.symlink_to(outside)
    return _external(d / "model" / "m.onnx", "weights.bin")


@case("onnx")
def onnx_external_fifo(d: Path) -> Path:
    """External data that is a FIFO in the model's folder (reading it would block forever)."""
    fifo = d / "pipe.bin"
    if not fifo.exists():
        os.mkfifo(fifo)
    return _external(d / "m.onnx", "pipe.bin")


@case("onnx")
def onnx_external_directory(d: Path) -> Path:
    """External data location naming a directory."""
    (d / "sub").mkdir(exist_ok=True)
    return _external(d / "m.onnx", "sub")


@case("onnx")
def onnx_external_beyond_eof(d: Path) -> Path:
    """Offset past the end of the data file, and a length that disagrees with the shape."""
    (d / "w.bin").write_bytes(bytes(192))
    return _external(d / "m.onnx", "w.bin", length=192, offset=1 << 40)


@case("onnx")
def onnx_external_length_mismatch(d: Path) -> Path:
    """Declared length 2^40 for a 192-byte tensor."""
    (d / "w.bin").write_bytes(bytes(192))
    return _external(d / "m.onnx", "w.bin", length=1 << 40)


@case("onnx")
def onnx_external_dotdot_nested(d: Path) -> Path:
    """Location "sub/../../secret.bin" (escapes after normalisation), with the target present."""
    (d / "model" / "sub").mkdir(parents=True, exist_ok=True)
    (d / "secret.bin").write_bytes(bytes(192))
    return _external(d / "model" / "m.onnx", "sub/../../secret.bin")


@case("onnx")
def onnx_huge_dims_no_data(d: Path) -> Path:
    """An initializer declaring dims [2^31, 2^31] with 12 bytes of raw data."""
    from onnx import TensorProto, helper

    t = _raw_tensor("W", TensorProto.FLOAT, [1 << 31, 1 << 31], b"\x00" * 12)
    return _save(_mini_graph([helper.make_node("MatMul", ["x", "W"], ["y"])], [t]), d / "m.onnx")


@case("onnx")
def onnx_negative_dims(d: Path) -> Path:
    """An initializer with a negative dimension."""
    from onnx import TensorProto, helper

    t = _raw_tensor("W", TensorProto.FLOAT, [-1, 2], b"\x00" * 8)
    return _save(_mini_graph([helper.make_node("MatMul", ["x", "W"], ["y"])], [t]), d / "m.onnx")


@case("onnx")
def onnx_constant_of_shape_bomb(d: Path) -> Path:
    """The LSTM's W from ConstantOfShape([1, 65536, 65536]) = 16 GiB of float32 when folded."""
    from onnx import TensorProto, helper

    m = _lstm_with_weight("bomb")
    m.graph.initializer.append(helper.make_tensor("bomb_shape", TensorProto.INT64, [3], [1, 65536, 65536]))
    m.graph.node.insert(0, helper.make_node("ConstantOfShape", ["bomb_shape"], ["bomb"],
                                            value=helper.make_tensor("v", TensorProto.FLOAT, [1], [1.0])))
    return _save(m, d / "m.onnx")


@case("onnx")
def onnx_expand_bomb(d: Path) -> Path:
    """The LSTM's W from Expand(ones(1), [1, 40000, 40000]) = 6 GiB when folded."""
    from onnx import TensorProto, helper

    m = _lstm_with_weight("bomb")
    m.graph.initializer.extend([helper.make_tensor("one", TensorProto.FLOAT, [1], [1.0]),
                                helper.make_tensor("bomb_shape", TensorProto.INT64, [3], [1, 40000, 40000])])
    m.graph.node.insert(0, helper.make_node("Expand", ["one", "bomb_shape"], ["bomb"]))
    return _save(m, d / "m.onnx")


@case("onnx")
def onnx_broadcast_bomb(d: Path) -> Path:
    """The LSTM's W from Add((1, 40000, 1), (1, 1, 40000)) constants = 6 GiB when folded."""
    from onnx import TensorProto, helper

    m = _lstm_with_weight("bomb")
    m.graph.initializer.extend([
        helper.make_tensor("a", TensorProto.FLOAT, [1, 40000, 1], np.zeros(40000, np.float32).tobytes(), raw=True),
        helper.make_tensor("b", TensorProto.FLOAT, [1, 1, 40000], np.zeros(40000, np.float32).tobytes(), raw=True)])
    m.graph.node.insert(0, helper.make_node("Add", ["a", "b"], ["bomb"]))
    return _save(m, d / "m.onnx")


@case("onnx")
def onnx_sparse_bomb(d: Path) -> Path:
    """A sparse initializer declaring dims [46341, 46341] (2^31 elements) with one value."""
    from onnx import TensorProto, helper

    m = _lstm_with_weight("sparse")
    values = helper.make_tensor("sparse", TensorProto.FLOAT, [1], [1.0])
    indices = helper.make_tensor("idx", TensorProto.INT64, [1], [0])
    m.graph.sparse_initializer.append(helper.make_sparse_tensor(values, indices, [46340, 46340]))
    return _save(m, d / "m.onnx")


@case("onnx")
def onnx_sparse_overflow(d: Path) -> Path:
    """A sparse initializer whose dims multiply past 2^64 (wraps to 0 in int64)."""
    from onnx import TensorProto, helper

    m = _lstm_with_weight("sparse")
    values = helper.make_tensor("sparse", TensorProto.FLOAT, [1], [1.0])
    indices = helper.make_tensor("idx", TensorProto.INT64, [1], [0])
    m.graph.sparse_initializer.append(helper.make_sparse_tensor(values, indices, [1 << 32, 1 << 32]))
    return _save(m, d / "m.onnx")


@case("onnx")
def onnx_graph_cycle(d: Path) -> Path:
    """Two nodes feeding each other."""
    from onnx import helper

    nodes = [helper.make_node("Add", ["x", "b"], ["a"]), helper.make_node("Relu", ["a"], ["b"]),
             helper.make_node("Identity", ["b"], ["y"])]
    return _save(_mini_graph(nodes, []), d / "m.onnx")


@case("onnx")
def onnx_self_loop_lstm(d: Path) -> Path:
    """The seed LSTM reading its own output as its input."""
    m = _onnx_seed()
    lstm = next(nd for nd in m.graph.node if nd.op_type == "LSTM")
    lstm.input[0] = lstm.output[0]
    return _save(m, d / "m.onnx")


def _identity_chain(m, source: str, prefix: str, length: int = 20000) -> str:
    """Puts ``length`` Identity nodes from ``source`` in front of m's nodes; returns the last output."""
    from onnx import helper

    chain = [helper.make_node("Identity", [source if i == 0 else f"{prefix}{i - 1}"], [f"{prefix}{i}"])
             for i in range(length)]
    nodes = chain + list(m.graph.node)
    del m.graph.node[:]
    m.graph.node.extend(nodes)
    return f"{prefix}{length - 1}"


@case("onnx")
def onnx_long_identity_chain(d: Path) -> Path:
    """20000 Identity nodes between the input and the LSTM (recursive walks overflow)."""
    m = _onnx_seed()
    uns = next(nd for nd in m.graph.node if nd.op_type == "Unsqueeze")
    uns.input[0] = _identity_chain(m, "x", "id")
    return _save(m, d / "m.onnx")


@case("onnx")
def onnx_long_constant_chain(d: Path) -> Path:
    """The LSTM's W computed through 20000 constant Identity nodes (recursive folding overflows)."""
    m = _onnx_seed()
    lstm = next(nd for nd in m.graph.node if nd.op_type == "LSTM")
    lstm.input[1] = _identity_chain(m, lstm.input[1], "c")
    return _save(m, d / "m.onnx")


@case("onnx")
def onnx_nested_ifs(d: Path) -> Path:
    """25 nested If nodes (about the protobuf depth limit) with constant conditions around the weight."""
    from onnx import TensorProto, helper

    m = _onnx_seed()
    lstm = next(nd for nd in m.graph.node if nd.op_type == "LSTM")
    w = next(t for t in m.graph.initializer if t.name == lstm.input[1])
    leaf = helper.make_graph([helper.make_node("Identity", [w.name], ["w_out"])], "leaf", [],
                             [helper.make_tensor_value_info("w_out", TensorProto.FLOAT, None)])
    inner = leaf
    for k in range(25):
        node = helper.make_node("If", ["cond"], [f"w_if{k}"], then_branch=inner, else_branch=leaf)
        inner = helper.make_graph([node], f"lvl{k}", [], [helper.make_tensor_value_info(f"w_if{k}", TensorProto.FLOAT, None)])
    top = inner.node[0]
    m.graph.initializer.append(helper.make_tensor("cond", TensorProto.BOOL, [], [True]))
    m.graph.node.insert(0, top)
    lstm.input[1] = top.output[0]
    return _save(m, d / "m.onnx")


@case("onnx")
def onnx_recursive_function(d: Path) -> Path:
    """A model-local function that calls itself (inlining never ends)."""
    from onnx import TensorProto, helper

    f = helper.make_function("local", "Rec", ["a"], ["b"], [helper.make_node("Rec", ["a"], ["b"], domain="local")],
                             [helper.make_opsetid("", 17), helper.make_opsetid("local", 1)])
    g = helper.make_graph([helper.make_node("Rec", ["x"], ["y"], domain="local")], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("local", 1)],
                          functions=[f], ir_version=8)
    return _save(m, d / "m.onnx")


@case("onnx")
def onnx_lstm_bad_attributes(d: Path) -> Path:
    """hidden_size 2^40, an unknown direction, activation_alpha = inf and 50 activations."""
    from onnx import helper

    m = _onnx_seed()
    lstm = next(nd for nd in m.graph.node if nd.op_type == "LSTM")
    del lstm.attribute[:]
    lstm.attribute.extend([helper.make_attribute("hidden_size", 1 << 40),
                           helper.make_attribute("direction", "sideways"),
                           helper.make_attribute("activations", ["Affine"] * 50),
                           helper.make_attribute("activation_alpha", [float("inf")] * 50)])
    return _save(m, d / "m.onnx")


@case("onnx")
def onnx_lstm_infinite_alpha(d: Path) -> Path:
    """Valid shapes, activations Affine with alpha = inf (weights are finite, the activation is not)."""
    from onnx import helper

    m = _onnx_seed()
    lstm = next(nd for nd in m.graph.node if nd.op_type == "LSTM")
    keep = [a for a in lstm.attribute if a.name not in ("activations", "activation_alpha", "activation_beta")]
    del lstm.attribute[:]
    lstm.attribute.extend(keep + [helper.make_attribute("activations", ["Sigmoid", "Affine", "Tanh"]),
                                  helper.make_attribute("activation_alpha", [float("inf")]),  # consumed by Affine
                                  helper.make_attribute("activation_beta", [0.0])])
    return _save(m, d / "m.onnx")


@case("onnx")
def onnx_string_initializer(d: Path) -> Path:
    """The LSTM's W as a string tensor."""
    from onnx import TensorProto, helper

    m = _lstm_with_weight("strw")
    m.graph.initializer.append(helper.make_tensor("strw", TensorProto.STRING, [1, 16, 3], [b"x"] * 48))
    return _save(m, d / "m.onnx")


@case("onnx")
def onnx_wrong_data_type(d: Path) -> Path:
    """Initializers with data types 0 (undefined), 99 and a raw_data length that mismatches."""
    m = _onnx_seed()
    for k, t in enumerate(m.graph.initializer):
        t.data_type = (0, 99, 16)[k % 3]
    return _save(m, d / "m.onnx")


@case("onnx")
def onnx_junk_opset(d: Path) -> Path:
    """opset version 10^9 and ir_version 10^9."""
    m = _onnx_seed()
    m.opset_import[0].version = 10 ** 9
    m.ir_version = 10 ** 9
    return _save(m, d / "m.onnx")


@case("onnx")
def onnx_unknown_op_on_path(d: Path) -> Path:
    """A Loop node on the data path."""
    from onnx import helper

    m = _onnx_seed()
    m.graph.node.insert(0, helper.make_node("Loop", ["", "", "x"], ["xl"], body=helper.make_graph([], "b", [], [])))
    next(nd for nd in m.graph.node if nd.op_type == "Unsqueeze").input[0] = "xl"
    return _save(m, d / "m.onnx")


@case("onnx")
def onnx_not_protobuf(d: Path) -> Path:
    """Random bytes named .onnx."""
    (d / "m.onnx").write_bytes(np.random.default_rng(0).bytes(4096))
    return d / "m.onnx"


# ---------------------------------------------------------------------------------- Keras
def keras_zip(path: Path, config=None, weights: bytes | None = None, raw_config: bytes | None = None) -> Path:
    with zipfile.ZipFile(SEEDS / "tiny.keras") as zf:
        members = {m: zf.read(m) for m in zf.namelist()}
    if config is not None:
        members["config.json"] = json.dumps(config).encode()
    if raw_config is not None:
        members["config.json"] = raw_config
    if weights is not None:
        members["model.weights.h5"] = weights
    with zipfile.ZipFile(path, "w") as zf:
        for m, data in members.items():
            zf.writestr(m, data)
    return path


def keras_config() -> dict:
    with zipfile.ZipFile(SEEDS / "tiny.keras") as zf:
        return json.loads(zf.read("config.json"))


def _h5_bytes(build) -> bytes:
    import h5py

    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        build(f)
    return buf.getvalue()


def _seed_weights_h5(f, modify=None) -> None:
    """Copy the seed's model.weights.h5 into the open h5py file ``f``, then let ``modify`` change it."""
    import h5py

    with zipfile.ZipFile(SEEDS / "tiny.keras") as zf:
        raw = zf.read("model.weights.h5")
    with h5py.File(io.BytesIO(raw), "r") as src:
        for k in src:
            src.copy(src[k], f, name=k)
        for k, v in src.attrs.items():
            f.attrs[k] = v
    if modify:
        modify(f)


def _lstm_vars(f):
    return f["layers"]["lstm"]["cell"]["vars"]


@case("keras")
def keras_custom_layer(d: Path) -> Path:
    """A layer class from a third-party module (its code would be imported)."""
    c = keras_config()
    c["config"]["layers"][1].update({"module": "evil_package.layers", "class_name": "Backdoor",
                                     "registered_name": "evil>Backdoor"})
    return keras_zip(d / "custom.keras", c)


@case("keras")
def keras_custom_activation(d: Path) -> Path:
    """An activation that names builtins.eval."""
    c = keras_config()
    c["config"]["layers"][1]["config"]["activation"] = {"module": "builtins", "class_name": "function",
                                                        "config": "eval", "registered_name": "eval"}
    return keras_zip(d / "act.keras", c)


@case("keras")
def keras_config_deep(d: Path) -> Path:
    """config.json nested 100000 levels deep."""
    return keras_zip(d / "deep.keras", raw_config=b"[" * 100000 + b"]" * 100000)


@case("keras")
def keras_units_mismatch(d: Path) -> Path:
    """Config says 2^40 units; the weights hold 4."""
    c = keras_config()
    c["config"]["layers"][1]["config"]["units"] = 1 << 40
    return keras_zip(d / "units.keras", c)


@case("keras")
def keras_shape_bomb(d: Path) -> Path:
    """An LSTM kernel declared (2^20, 2^15) float64 = 256 GiB, chunked, nothing written."""
    def modify(f):
        v = _lstm_vars(f)
        del v["0"]
        v.create_dataset("0", shape=(1 << 20, 1 << 15), dtype="f8", chunks=(1024, 1024))
    return keras_zip(d / "shape_bomb.keras", weights=_h5_bytes(lambda f: _seed_weights_h5(f, modify)))


@case("keras")
def keras_gzip_bomb(d: Path) -> Path:
    """An LSTM kernel of 64 MiB of zeros stored gzip-compressed in ~100 KB."""
    def modify(f):
        v = _lstm_vars(f)
        del v["0"]
        ds = v.create_dataset("0", shape=(2048, 4096), dtype="f8", chunks=(256, 4096), compression="gzip",
                              compression_opts=9)
        ds[...] = 0.0
    return keras_zip(d / "gzip_bomb.keras", weights=_h5_bytes(lambda f: _seed_weights_h5(f, modify)))


@case("keras")
def keras_external_link(d: Path) -> Path:
    """The kernel is an HDF5 external link to /etc/passwd."""
    import h5py

    def modify(f):
        v = _lstm_vars(f)
        del v["0"]
        v["0"] = h5py.ExternalLink("/etc/passwd", "/x")
    return keras_zip(d / "extlink.keras", weights=_h5_bytes(lambda f: _seed_weights_h5(f, modify)))


@case("keras")
def keras_soft_link_cycle(d: Path) -> Path:
    """A soft link pointing at its own group."""
    import h5py

    def modify(f):
        f["layers"]["lstm"]["loop"] = h5py.SoftLink("/layers/lstm")
    return keras_zip(d / "softlink.keras", weights=_h5_bytes(lambda f: _seed_weights_h5(f, modify)))


@case("keras")
def keras_hard_link_cycle(d: Path) -> Path:
    """A hard link making a group its own child (a cycle in the HDF5 tree)."""
    def modify(f):
        g = f["layers"]["lstm"]["cell"]
        g["again"] = g
    return keras_zip(d / "hardlink.keras", weights=_h5_bytes(lambda f: _seed_weights_h5(f, modify)))


LEGACY_KERNEL = "model_weights/lstm/sequential/lstm/lstm_cell/kernel"


def _legacy_h5(path: Path, modify) -> Path:
    """The legacy seed copied to ``path``, then changed by ``modify(h5py.File)``."""
    import h5py

    with h5py.File(path, "w") as f:
        _seed_h5_legacy(f)
        modify(f)
    return path


@case("keras")
def keras_hard_link_fanout(d: Path) -> Path:
    """Hard links as billion laughs: 12 levels of a group linking the next level 10 times, the
    LSTM kernel (192 bytes) at the bottom: 10^12 paths to one dataset."""
    def modify(f):
        cell = f["layers"]["lstm"]["cell"]
        level = cell.create_group("fan_bottom")
        level["vars"] = cell["vars"]
        for k in range(12):
            up = cell.create_group(f"fan{k}")
            for j in range(10):
                up[f"l{j}"] = level
            level = up
        cell["fan_top"] = level
    return keras_zip(d / "fanout.keras", weights=_h5_bytes(lambda f: _seed_weights_h5(f, modify)))


@case("keras")
def keras_external_storage(d: Path) -> Path:
    """Legacy .h5 whose LSTM kernel's storage is an external raw file (/etc/passwd)."""
    def modify(f):
        shape, dtype = f[LEGACY_KERNEL].shape, f[LEGACY_KERNEL].dtype
        del f[LEGACY_KERNEL]
        f.create_dataset(LEGACY_KERNEL, shape=shape, dtype=dtype,
                         external=[("/etc/passwd", 0, int(np.prod(shape)) * dtype.itemsize)])
    return _legacy_h5(d / "external.h5", modify)


def _walk_datasets(group, prefix=""):
    import h5py

    for k in group:
        obj = group[k]
        if isinstance(obj, h5py.Dataset):
            yield prefix + k
        else:
            yield from _walk_datasets(obj, prefix + k + "/")


def _seed_h5_legacy(f) -> None:
    import h5py

    with h5py.File(SEEDS / "tiny.h5", "r") as src:
        for k in src:
            src.copy(src[k], f, name=k)
        for k, v in src.attrs.items():
            f.attrs[k] = v


@case("keras")
def keras_h5_string_weights(d: Path) -> Path:
    """Legacy .h5 whose LSTM kernel is a variable-length string dataset."""
    import h5py

    def modify(f):
        del f[LEGACY_KERNEL]
        f.create_dataset(LEGACY_KERNEL, data=np.array(["import os"] * 4, dtype=h5py.string_dtype()))
    return _legacy_h5(d / "strings.h5", modify)


@case("keras")
def keras_h5_int_weights(d: Path) -> Path:
    """Legacy .h5 whose LSTM kernel is int64."""
    def modify(f):
        shape = f[LEGACY_KERNEL].shape
        del f[LEGACY_KERNEL]
        f.create_dataset(LEGACY_KERNEL, data=np.ones(shape, np.int64))
    return _legacy_h5(d / "ints.h5", modify)


@case("keras")
def keras_h5_virtual_dataset(d: Path) -> Path:
    """Legacy .h5 whose LSTM kernel is a virtual dataset mapping another file."""
    import h5py

    src = d / "other.h5"
    with h5py.File(src, "w") as f:
        f.create_dataset("x", data=np.zeros((3, 16), np.float32))

    def modify(f):
        shape = f[LEGACY_KERNEL].shape
        del f[LEGACY_KERNEL]
        layout = h5py.VirtualLayout(shape=shape, dtype="f4")
        layout[:] = h5py.VirtualSource(str(src), "x", shape=shape)
        f.create_virtual_dataset(LEGACY_KERNEL, layout)
    return _legacy_h5(d / "virtual.h5", modify)


@case("keras")
def keras_h5_model_config_junk(d: Path) -> Path:
    """Legacy .h5 whose model_config has "layers" as a string."""
    def modify(f):
        f.attrs["model_config"] = json.dumps({"class_name": "Sequential", "config": {"layers": "lstm"}})
    return _legacy_h5(d / "junkcfg.h5", modify)


@case("keras")
def keras_h5_weight_names_junk(d: Path) -> Path:
    """Legacy .h5 whose weight_names attribute names datasets that do not exist, and '..'."""
    def modify(f):
        f["model_weights/lstm"].attrs["weight_names"] = np.array([b"../../../etc/passwd", b"nope/kernel:0"])
    return _legacy_h5(d / "names.h5", modify)


@case("keras")
def keras_weights_not_h5(d: Path) -> Path:
    """model.weights.h5 holding random bytes."""
    return keras_zip(d / "noth5.keras", weights=np.random.default_rng(1).bytes(2048))


@case("keras")
def keras_h5_truncated(d: Path) -> Path:
    """The legacy seed cut in half."""
    raw = (SEEDS / "tiny.h5").read_bytes()
    (d / "half.h5").write_bytes(raw[: len(raw) // 2])
    return d / "half.h5"


# ================================================================== issue 18: loader hardening
# What the refusal of each of these cases must say (the fuzz test checks it); a case missing
# here must load safely or be refused for any reason.
REFUSAL: dict[str, str] = {}


def refused(fragment: str):
    """Register a case that must be refused with a message containing ``fragment``."""
    def register(fn):
        REFUSAL[fn.__name__] = fragment
        return fn
    return register


SETITEM, BUILD, NONE, NEWOBJ, LONG_BINPUT = b"s", b"b", b"N", b"\x81", b"r"


def build_state(**slots: bytes) -> bytes:
    """Pickle ops of a BUILD state ``(None, {slot: value})`` applied to the object on the stack."""
    items = b"".join(s(k) + v + SETITEM for k, v in slots.items())
    return NONE + EMPTY_DICT + items + TUPLE2 + BUILD


def _lstm_sd_with(key: str, ops: bytes) -> bytes:
    """A valid LSTM state dict whose ``key`` entry is built by ``ops``."""
    items = lstm_sd()
    items[key] = ops
    return state_dict(items)


@case("torch")
@refused("pickled state on tensors and storages is refused")
def torch_build_stride_huge_negative(d: Path) -> Path:
    """BUILD right after _rebuild_tensor_v2 sets the stride to -(1<<40) after the constructor's checks
    (as_strided then reads a terabyte before the storage: SIGSEGV)."""
    ops = tensor("0", 48, (16, 3), (3, 1)) + build_state(stride=tup(n(-(1 << 40)), n(1)))
    return torch_zip(d / "stride.pt", _lstm_sd_with("lstm.weight_ih_l0", ops), LSTM_RECORDS)


@case("torch")
@refused("pickled state on tensors and storages is refused")
def torch_legacy_build_stride_backwards(d: Path) -> Path:
    """Legacy container; BUILD sets stride (-4, -1): the weights would be the heap bytes before the storage."""
    ops = tensor("0", 48, (16, 3), (3, 1)) + build_state(stride=tup(n(-4), n(-1)))
    records = [(k, len(v) // 4, v) for k, v in LSTM_RECORDS.items()]
    return torch_legacy(d / "stride.pt", _lstm_sd_with("lstm.weight_ih_l0", ops), records)


@case("torch")
@refused("pickled state on tensors and storages is refused")
def torch_build_offset_negative(d: Path) -> Path:
    """BUILD sets the storage offset to -4096 after the checks (an over-read before the storage)."""
    ops = tensor("0", 48, (16, 3), (3, 1)) + build_state(offset=n(-4096))
    return torch_zip(d / "offset.pt", _lstm_sd_with("lstm.weight_ih_l0", ops), LSTM_RECORDS)


@case("torch")
@refused("pickled state on tensors and storages is refused")
def torch_build_storage_to_string(d: Path) -> Path:
    """BUILD replaces a tensor's storage by a string (AttributeError in a careless loader)."""
    ops = tensor("0", 48, (16, 3), (3, 1)) + build_state(storage=s("not a storage"))
    return torch_zip(d / "storage.pt", _lstm_sd_with("lstm.weight_ih_l0", ops), LSTM_RECORDS)


@case("torch")
@refused("pickled state on tensors and storages is refused")
def torch_build_storage_class_dtype(d: Path) -> Path:
    """BUILD on the torch.FloatStorage class reference sets its dtype to 'O' (a shared object: a
    careless loader would break every later load in the process)."""
    ops = g("torch", "FloatStorage") + build_state(dtype=s("O")) + b"0"  # POP: leave the stack clean
    pkl = PROTO2 + ops + state_dict(lstm_sd())[len(PROTO2):]
    return torch_zip(d / "dtype.pt", pkl, LSTM_RECORDS)


@case("torch")
@refused("built without its constructor")
def torch_newobj_numpy_dtype(d: Path) -> Path:
    """NEWOBJ makes a numpy.dtype stand-in without calling its constructor, then uses it in an array."""
    dtype = g("numpy", "dtype") + EMPTY_TUPLE + NEWOBJ
    arr = (g("numpy.core.multiarray", "_reconstruct") + tup(g("numpy", "ndarray"), tup(n(0)), s("b")) + REDUCE
           + tup(n(1), tup(n(2)), dtype, b"\x89", b"C" + bytes([8]) + bytes(8)) + BUILD)
    return torch_zip(d / "newobj.pt", state_dict({**lstm_sd(), "extra": arr}), LSTM_RECORDS)


@case("torch")
@refused("complex storage")
def torch_complex_storage(d: Path) -> Path:
    """An LSTM weight over a ComplexFloatStorage (the imaginary part would be dropped silently)."""
    ops = tensor("0", 48, (16, 3), (3, 1), storage="ComplexFloatStorage")
    records = dict(LSTM_RECORDS, **{"0": f32(96)})
    return torch_zip(d / "complex.pt", _lstm_sd_with("lstm.weight_ih_l0", ops), records)


@case("torch")
@refused("not a plain real numeric type")
def torch_numpy_datetime(d: Path) -> Path:
    """A pickled numpy array of datetime64 next to the weights."""
    dtype = g("numpy", "dtype") + tup(s("M8"), b"\x89", b"\x88") + REDUCE
    arr = (g("numpy.core.multiarray", "_reconstruct") + tup(g("numpy", "ndarray"), tup(n(0)), s("b")) + REDUCE
           + tup(n(1), tup(n(1)), dtype, b"\x89", b"C" + bytes([8]) + bytes(8)) + BUILD)
    return torch_zip(d / "datetime.pt", state_dict({**lstm_sd(), "when": arr}), LSTM_RECORDS)


@case("torch")
@refused("memo index")
def torch_memo_index_bomb(d: Path) -> Path:
    """LONG_BINPUT with memo index 2^28 (363 B: the C unpickler grows its memo to 4 GB)."""
    pkl = PROTO2 + EMPTY_DICT + LONG_BINPUT + struct.pack("<I", 1 << 28) + STOP
    return torch_zip(d / "memo.pt", pkl, {})


@case("torch")
@refused("load budget")
def torch_many_expanded_tensors(d: Path) -> Path:
    """600 REDUCEs building stride-0 tensors of about 2^20 elements over one 16-element storage
    (each of another size, so none is the other): 2.4 GB of copies from a few tens of KB."""
    items = lstm_sd({f"expanded{i}": tensor("2", 16, ((1 << 20) - i,), (0,)) for i in range(600)})
    return torch_zip(d / "expanded.pt", state_dict(items), LSTM_RECORDS)


def _zeros_member_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


SIXTEEN_MIB = 16 << 20


@case("torch")
@refused("load budget")
def torch_many_16mib_records(d: Path) -> Path:
    """24 storage records of exactly 16 MiB of zeros each (the bomb floor: not a bomb one by one),
    deflated to a few hundred KB: 384 MB when read."""
    items = lstm_sd({f"big{i}": tensor(f"big{i}", SIXTEEN_MIB // 4, (SIXTEEN_MIB // 4,), (1,)) for i in range(24)})
    zeros = bytes(SIXTEEN_MIB)
    members = {"archive/data.pkl": state_dict(items), "archive/byteorder": b"little"}
    members.update({f"archive/data/{k}": v for k, v in LSTM_RECORDS.items()})
    members.update({f"archive/data/big{i}": zeros for i in range(24)})
    return _zeros_member_zip(d / "records.pt", members)


@case("native")
@refused("load budget")
def npz_many_16mib_members(d: Path) -> Path:
    """24 .npy members of exactly 16 MiB each (header included), deflated: 384 MB when read."""
    header = npy_header(((SIXTEEN_MIB - 128) // 8,))
    assert len(header) == 128
    member = header + bytes(SIXTEEN_MIB - 128)
    with zipfile.ZipFile(SEEDS / "tiny.npz") as zf:
        members = {m: zf.read(m) for m in zf.namelist()}
    members.update({f"pad{i}.npy": member for i in range(24)})
    return _zeros_member_zip(d / "members.npz", members)


@case("torch")
@refused("overlap")
def st_overlapping_offsets(d: Path) -> Path:
    """2,000 safetensors entries all spanning the same 1 MiB buffer (2 GB when each is read)."""
    header = {f"t{i}": {"dtype": "F32", "shape": [1 << 18], "data_offsets": [0, 1 << 20]} for i in range(2000)}
    return safetensors_file(d / "overlap.safetensors", header, bytes(1 << 20))


@case("torch")
@refused("bad shape")
def st_shape_beyond_intp(d: Path) -> Path:
    """A safetensors entry of shape [0, 2^64] (zero bytes, but no array can have that shape)."""
    return safetensors_file(d / "shape.safetensors", {"t": {"dtype": "F32", "shape": [0, 1 << 64],
                                                             "data_offsets": [0, 0]}})


@case("keras")
@refused("load budget")
def keras_h5_unwritten_float16(d: Path) -> Path:
    """Legacy .h5 whose LSTM lists 40 never-written float16 datasets of 16 MiB each (no storage is
    allocated, so the file stays small); read and widened to float64 they are 2.7 GB."""
    def modify(f):
        g_ = f[LEGACY_KERNEL].parent
        names = []
        for i in range(40):
            g_.create_dataset(f"unwritten{i}", shape=(SIXTEEN_MIB // 2,), dtype=np.float16)
            names.append(f"{g_.name.split('/', 3)[-1]}/unwritten{i}".encode())
        layer = f["model_weights"]["lstm"]
        old = [w if isinstance(w, bytes) else str(w).encode() for w in layer.attrs["weight_names"]]
        layer.attrs["weight_names"] = np.array(old + names, dtype="S")
    return _legacy_h5(d / "unwritten.h5", modify)


def _keras_dir(d: Path) -> Path:
    """The seed .keras unpacked into a directory model ``m.keras/``."""
    out = d / "m.keras"
    out.mkdir()
    with zipfile.ZipFile(SEEDS / "tiny.keras") as zf:
        zf.extractall(out)
    return out


@case("keras")
@refused("outside the model directory")
def keras_dir_config_symlink_out(d: Path) -> Path:
    """A directory model whose config.json is a symlink to /etc/passwd."""
    out = _keras_dir(d)
    (out / "config.json").unlink()
    (out / "config.json").symlink_to("/etc/passwd")
    return out


@case("keras")
@refused("outside the model directory")
def keras_dir_weights_symlink_out(d: Path) -> Path:
    """A directory model whose model.weights.h5 is a symlink to a (valid) file outside it."""
    out = _keras_dir(d)
    outside = d / "elsewhere.weights.h5"
    (out / "model.weights.h5").rename(outside)
    (out / "model.weights.h5").symlink_to(outside)
    return out


def _fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


for _ext, _fmt in ((".npz", "native"), (".onnx", "onnx"), (".pt", "torch"), (".safetensors", "torch"),
                   (".keras", "keras"), (".h5", "keras")):
    def _make(d: Path, ext=_ext) -> Path:
        return _fifo(d / f"fifo{ext}")
    _make.__name__ = f"fifo_{_ext[1:]}"
    _make.__doc__ = f"A FIFO named like a {_ext} model: opening it for reading blocks until a writer comes."
    case(_fmt)(refused("not a regular file")(_make))


@case("native")
@refused("not a regular file")
def npz_symlink_to_dev_zero(d: Path) -> Path:
    """A symlink named m.npz pointing at /dev/zero (an endless stream of zeros)."""
    p = d / "zero.npz"
    p.symlink_to("/dev/zero")
    return p


@case("onnx")
@refused("not a regular file")
def onnx_symlink_to_fifo(d: Path) -> Path:
    """A symlink named m.onnx pointing at a FIFO."""
    p = d / "m.onnx"
    p.symlink_to(_fifo(d / "pipe"))
    return p


def _function_doubling(levels: int):
    """Local functions F_0 = Identity, F_k(x) = F_{k-1}(F_{k-1}(x)): F_levels inlines to 2^levels nodes."""
    from onnx import TensorProto, helper

    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("local", 1)]
    funcs = [helper.make_function("local", "F0", ["a"], ["b"], [helper.make_node("Identity", ["a"], ["b"])], opsets)]
    for k in range(1, levels + 1):
        body = [helper.make_node(f"F{k - 1}", ["a"], ["t"], domain="local"),
                helper.make_node(f"F{k - 1}", ["t"], ["b"], domain="local")]
        funcs.append(helper.make_function("local", f"F{k}", ["a"], ["b"], body, opsets))
    g = helper.make_graph([helper.make_node(f"F{levels}", ["x"], ["y"], domain="local")], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])])
    return helper.make_model(g, opset_imports=opsets, functions=funcs, ir_version=8)


@case("onnx")
@refused("inlining the model's local functions")
def onnx_function_doubling(d: Path) -> Path:
    """30 local functions, each calling the previous one twice: 2^30 nodes once inlined, from 2 KB."""
    return _save(_function_doubling(30), d / "m.onnx")


@case("onnx")
@refused("load budget")
def onnx_add_chain_over_constant_of_shape(d: Path) -> Path:
    """The LSTM's W from a chain of 24 Adds over ConstantOfShape([16 Mi]) (64 MiB each; a folder
    keeping every intermediate holds 1.6 GB)."""
    from onnx import TensorProto, helper

    m = _lstm_with_weight("sum23")
    m.graph.initializer.append(helper.make_tensor("big_shape", TensorProto.INT64, [1], [1 << 24]))
    nodes = [helper.make_node("ConstantOfShape", ["big_shape"], ["sum_start"],
                              value=helper.make_tensor("v", TensorProto.FLOAT, [1], [1.0]))]
    for k in range(24):
        nodes.append(helper.make_node("Add", ["sum_start" if k == 0 else f"sum{k - 1}", "sum_start"], [f"sum{k}"]))
    for i, nd in enumerate(nodes):
        m.graph.node.insert(i, nd)
    return _save(m, d / "m.onnx")


def _lstm_weight_through(op: str, make_inputs) -> "onnx.ModelProto":
    """The seed model with its LSTM W computed by one node ``op`` named 'bad_<op>' over constants."""
    from onnx import helper

    m = _onnx_seed()
    lstm = next(nd for nd in m.graph.node if nd.op_type == "LSTM")
    inputs, inits, attrs = make_inputs(lstm.input[1])
    m.graph.initializer.extend(inits)
    m.graph.node.insert(0, helper.make_node(op, inputs, ["w_computed"], name=f"bad_{op}", **attrs))
    lstm.input[1] = "w_computed"
    return m


def _bad_fold_case(op: str, make_inputs, doc: str):
    def make(d: Path) -> Path:
        return _save(_lstm_weight_through(op, make_inputs), d / "m.onnx")
    make.__name__ = f"onnx_bad_{op.lower()}_on_weights"
    make.__doc__ = doc
    case("onnx")(refused(f"node 'bad_{op}' (op {op}")(make))


def _ints_init(name, values):
    from onnx import TensorProto, helper

    return helper.make_tensor(name, TensorProto.INT64, [len(values)], values)


_bad_fold_case("Reshape", lambda w: ([w, "bad_shape"], [_ints_init("bad_shape", [7, 5])], {}),
               "The LSTM's W is Reshape(W, [7, 5]): 48 elements do not fit; the error must name the Reshape.")
_bad_fold_case("Transpose", lambda w: ([w], [], {"perm": [0, 0, 5]}),
               "The LSTM's W is Transpose(W, perm=[0, 0, 5]): not a permutation.")
_bad_fold_case("Gather", lambda w: ([w, "bad_idx"], [_ints_init("bad_idx", [99])], {"axis": 0}),
               "The LSTM's W is Gather(W, [99]) on an axis of length 1.")
_bad_fold_case("Concat", lambda w: ([w, "bad_part"], [_ints_init("bad_part", [1, 2])], {"axis": 2}),
               "The LSTM's W is Concat(W, a rank-1 tensor): ranks differ.")
_bad_fold_case("Cast", lambda w: ([w], [], {"to": 8}),
               "The LSTM's W is Cast(W, to=STRING).")


@case("onnx")
def onnx_tied_lstm_weights(d: Path) -> Path:
    """60 LSTM nodes in a chain sharing one W and one R initializer (weight tying): must load, with
    one float64 copy of W/R in the importer rather than one per node."""
    from onnx import TensorProto, helper

    H, I = 16, 16
    rng = np.random.default_rng(0)
    W = helper.make_tensor("W", TensorProto.FLOAT, [1, 4 * H, I], rng.uniform(-0.3, 0.3, 4 * H * I).astype(np.float32).tobytes(), raw=True)
    R = helper.make_tensor("R", TensorProto.FLOAT, [1, 4 * H, H], rng.uniform(-0.3, 0.3, 4 * H * H).astype(np.float32).tobytes(), raw=True)
    axes = helper.make_tensor("axes1", TensorProto.INT64, [1], [1])
    nodes, cur = [], "x"
    for k in range(60):
        nodes.append(helper.make_node("LSTM", [cur, "W", "R"], [f"y{k}"], hidden_size=H, name=f"lstm{k}"))
        nodes.append(helper.make_node("Squeeze", [f"y{k}", "axes1"], [f"s{k}"]))
        cur = f"s{k}"
    nodes.append(helper.make_node("Identity", [cur], ["y"]))
    g = helper.make_graph(nodes, "tied", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["T", 1, I])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["T", 1, H])], initializer=[W, R, axes])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    return _save(m, d / "tied.onnx")


@case("torch")
@refused("load budget")
def torch_size_fanout(d: Path) -> Path:
    """torch.Size called 2,000 times on one memoized list of 100,000 ints: each call copies it
    (3.2 GB of tuples from 200 KB)."""
    big = EMPTY_LIST + b"q\x00" + MARK + b"K\x01" * 100_000 + b"e"  # BINPUT 0, then APPENDS
    calls = b"".join(g("torch", "Size") + b"h\x00" + b"\x85" + REDUCE + b"0" for _ in range(2000))  # TUPLE1, POP
    pkl = PROTO2 + big + b"0" + calls + state_dict(lstm_sd())[len(PROTO2):]
    return torch_zip(d / "size.pt", pkl, LSTM_RECORDS)


@case("keras")
@refused("load budget")
def keras_config_of_empty_lists(d: Path) -> Path:
    """A .keras whose config.json is 16 MiB of '[],' (deflated to a few KB): json.loads would
    build 5.6 million lists (300 MB)."""
    body = b"[]," * ((SIXTEEN_MIB - 32) // 3)
    raw = b'{"a": [' + body + b"[]]}"
    with zipfile.ZipFile(SEEDS / "tiny.keras") as zf:
        members = {m: zf.read(m) for m in zf.namelist()}
    members["config.json"] = raw
    return _zeros_member_zip(d / "lists.keras", members)
