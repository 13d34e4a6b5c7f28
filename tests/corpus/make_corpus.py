"""Regenerate the committed loader corpus: small valid seed files and real malicious samples.

    KERAS_BACKEND=torch python tests/corpus/make_corpus.py          # ~3 minutes (the bombs)

``seeds/`` holds one tiny valid model per format, all the same network shape (input 3, LSTM 4,
Dense 2): ``tiny.npz`` (native), ``tiny.onnx``, ``tiny_zip.pt`` and ``tiny_legacy.pt`` (torch.save,
zip and legacy containers), ``tiny.safetensors``, ``tiny.keras`` and ``tiny.h5`` (Keras 3). The
fuzzers mutate them.

``malicious/`` holds samples that a careless loader would execute, follow or expand:

- ``pickle_system_zip.pt``, ``pickle_system_legacy.pt``: torch.save checkpoints whose pickle
  calls ``os.system`` while unpickling; ``pickle_system_plain.pth``: a bare pickle doing the same;
  ``pickle_exec_tensor.pt``: a valid checkpoint whose pickle first calls ``exec`` (result popped),
  then builds the real state dict. Each payload runs
  ``touch "$STREAMLSTM_FUZZ_MARKER"``, so a test sets that variable and checks the file is absent.
- ``keras_lambda.keras``, ``keras_lambda.h5``: Keras models with a Lambda layer whose Python code
  (marshalled bytecode) runs the same command when Keras deserialises and calls it.
- ``onnx_external_dotdot.onnx``, ``onnx_external_absolute.onnx``: an initializer whose external
  data lives at ``../secret.bin`` / ``/etc/passwd`` (16 bytes, a 2x2 float tensor).
- ``bomb_weights.keras``, ``bomb_storage.pt``, ``bomb_pickle.pt``, ``bomb_array.npz``: zip
  archives with a bzip2 member that expands to 3 GiB of zeros (a few KB on disk): the Keras
  weights file, a torch storage record (declared by the pickle as 768 Mi floats), the torch
  ``data.pkl`` itself, and a ``.npy`` member declaring 384 Mi float64.
"""

from __future__ import annotations

import bz2
import io
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SEEDS, MALICIOUS = HERE / "seeds", HERE / "malicious"
I, H, O = 3, 4, 2
PAYLOAD = 'touch "$STREAMLSTM_FUZZ_MARKER"'
BOMB_BYTES = 3 << 30


# ------------------------------------------------------------------ seeds
def tiny_weights(seed: int = 0) -> dict[str, np.ndarray]:
    """PyTorch-layout weights of the seed network (LSTM gates i,f,g,o)."""
    rng = np.random.default_rng(seed)
    u = lambda *s: rng.uniform(-0.5, 0.5, size=s).astype(np.float32)  # noqa: E731
    return {"lstm.weight_ih_l0": u(4 * H, I), "lstm.weight_hh_l0": u(4 * H, H),
            "lstm.bias_ih_l0": u(4 * H), "lstm.bias_hh_l0": u(4 * H),
            "fc.weight": u(O, H), "fc.bias": u(O)}


def make_seeds() -> None:
    import torch
    from safetensors.numpy import save_file

    import streamlstm as sl
    from streamlstm.converters.torch import import_torch

    SEEDS.mkdir(parents=True, exist_ok=True)
    w = tiny_weights()
    sd = {k: torch.from_numpy(v.copy()) for k, v in w.items()}
    torch.save(sd, SEEDS / "tiny_zip.pt")
    torch.save(sd, SEEDS / "tiny_legacy.pt", _use_new_zipfile_serialization=False)
    save_file(w, str(SEEDS / "tiny.safetensors"))
    net = import_torch(SEEDS / "tiny_zip.pt")
    net.save(SEEDS / "tiny.npz")
    sl.Model(net).to_onnx(SEEDS / "tiny.onnx")
    make_keras_seeds()


def make_keras_seeds() -> None:
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((None, I)), keras.layers.LSTM(H, return_sequences=True),
                              keras.layers.Dense(O)])
    model.save(SEEDS / "tiny.keras")
    model.save(SEEDS / "tiny.h5")


# ------------------------------------------------------------------ pickles
class _System:
    """Pickles as a call to os.system(PAYLOAD)."""

    def __reduce__(self):
        return os.system, (PAYLOAD,)


class _Exec:
    """Pickles as a call to builtins.exec whose code runs the payload."""

    def __reduce__(self):
        return exec, (f"import os; os.system({PAYLOAD!r})",)


def make_pickles() -> None:
    import torch

    MALICIOUS.mkdir(parents=True, exist_ok=True)
    ok = {"lstm.weight_ih_l0": torch.zeros(4 * H, I)}
    torch.save({**ok, "x": _System()}, MALICIOUS / "pickle_system_zip.pt")
    torch.save({**ok, "x": _System()}, MALICIOUS / "pickle_system_legacy.pt", _use_new_zipfile_serialization=False)
    (MALICIOUS / "pickle_system_plain.pth").write_bytes(pickle.dumps({"state_dict": _System()}, protocol=2))
    # a call to exec, its result popped, in front of the seed's valid pickle
    src = SEEDS / "tiny_zip.pt"
    with zipfile.ZipFile(src) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    pkl_name = next(n for n in members if n.endswith("/data.pkl"))
    evil = pickle.dumps(_Exec(), protocol=2)[2:-1]  # the GLOBAL+args+REDUCE body, no PROTO/STOP
    body = members[pkl_name]
    assert body[:2] == b"\x80\x02"  # PROTO 2 stays first
    members[pkl_name] = body[:2] + evil + b"0" + body[2:]
    _write_zip(MALICIOUS / "pickle_exec_tensor.pt", members)


# ------------------------------------------------------------------ keras lambda
def make_keras_lambda() -> None:
    import keras

    fn = eval(f"lambda x: (__import__('os').system({PAYLOAD!r}), x)[1]")  # a plain lambda, as users write them
    model = keras.Sequential([keras.Input((None, I)), keras.layers.LSTM(H, return_sequences=True),
                              keras.layers.Lambda(fn, output_shape=(None, H)), keras.layers.Dense(O)])
    model.save(MALICIOUS / "keras_lambda.keras")
    model.save(MALICIOUS / "keras_lambda.h5")


def check_keras_payload(marker: Path) -> bool:
    """Control: does Keras itself run the Lambda when told to trust the file (safe_mode=False)?"""
    code = ("import keras, sys, numpy as np; keras.config.enable_unsafe_deserialization(); "
            "keras.saving.load_model(sys.argv[1], safe_mode=False)(np.zeros((1, 2, 3), 'float32'))")
    env = {**os.environ, "STREAMLSTM_FUZZ_MARKER": str(marker), "KERAS_BACKEND": "torch"}
    if marker.exists():
        marker.unlink()
    subprocess.run([sys.executable, "-c", code, str(MALICIOUS / "keras_lambda.keras")], env=env,
                   capture_output=True, timeout=300)
    return marker.exists()


# ------------------------------------------------------------------ onnx external data
def make_onnx_external() -> None:
    from onnx import TensorProto, helper

    for name, loc in (("onnx_external_dotdot.onnx", "../secret.bin"), ("onnx_external_absolute.onnx", "/etc/passwd")):
        t = TensorProto(name="W", data_type=TensorProto.FLOAT, dims=[2, 2])
        t.data_location = TensorProto.EXTERNAL
        for k, v in (("location", loc), ("offset", "0"), ("length", "16")):
            e = t.external_data.add()
            e.key, e.value = k, v
        g = helper.make_graph([helper.make_node("MatMul", ["x", "W"], ["y"])], "ext",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])], initializer=[t])
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
        (MALICIOUS / name).write_bytes(m.SerializeToString())


# ------------------------------------------------------------------ zip bombs
def _bz2_zeros(head: bytes, total: int) -> bytes:
    """bzip2 stream of ``head`` followed by zeros up to ``total`` bytes."""
    c = bz2.BZ2Compressor(9)
    out = [c.compress(head)]
    block = bytes(64 << 20)
    left = total - len(head)
    while left > 0:
        out.append(c.compress(block[:min(left, len(block))]))
        left -= len(block)
    out.append(c.flush())
    return b"".join(out)


def _raw_member(zf: zipfile.ZipFile, name: str, compressed: bytes, size: int, crc: int) -> None:
    """Add a bzip2 member from an already compressed stream (zipfile cannot stream 3 GiB cheaply)."""
    info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_BZIP2
    info.file_size, info.compress_size, info.CRC = size, len(compressed), crc
    info.create_version = info.extract_version = 46
    info.header_offset = zf.fp.tell()
    zf.fp.write(info.FileHeader(zip64=size > zipfile.ZIP64_LIMIT))
    zf.fp.write(compressed)
    zf.start_dir = zf.fp.tell()
    zf.filelist.append(info)
    zf.NameToInfo[name] = info


def _zero_crc(head: bytes, total: int) -> int:
    crc = zipfile.crc32(head)
    block = bytes(64 << 20)
    left = total - len(head)
    while left > 0:
        crc = zipfile.crc32(block[:min(left, len(block))], crc)
        left -= len(block)
    return crc


def _write_bomb(path: Path, name: str, head: bytes, others: dict[str, bytes]) -> None:
    compressed = _bz2_zeros(head, BOMB_BYTES)
    crc = _zero_crc(head, BOMB_BYTES)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for n, data in others.items():
            zf.writestr(zipfile.ZipInfo(n, date_time=(2020, 1, 1, 0, 0, 0)), data)
        zf.fp.seek(zf.start_dir)
        _raw_member(zf, name, compressed, BOMB_BYTES, crc)


def make_bombs() -> None:
    # .keras: the weights member expands to 3 GiB
    with zipfile.ZipFile(SEEDS / "tiny.keras") as zf:
        keras_members = {n: zf.read(n) for n in zf.namelist() if n != "model.weights.h5"}
    _write_bomb(MALICIOUS / "bomb_weights.keras", "model.weights.h5", b"", keras_members)

    # .pt: the pickle declares one float storage of 768 Mi elements; its record is the bomb
    numel = BOMB_BYTES // 4
    pkl = torch_pickle({"lstm.weight_ih_l0": (numel, (numel // I, I), (I, 1))})
    others = {"archive/data.pkl": pkl, "archive/byteorder": b"little", "archive/version": b"3\n"}
    _write_bomb(MALICIOUS / "bomb_storage.pt", "archive/data/0", b"", others)

    # .pt: data.pkl itself expands to 3 GiB (a valid pickle prefix, then zeros)
    others = {"archive/byteorder": b"little", "archive/version": b"3\n"}
    _write_bomb(MALICIOUS / "bomb_pickle.pt", "archive/data.pkl", b"\x80\x02", others)

    # .npz: a valid config, and a .npy member declaring 384 Mi float64 that really holds them
    with zipfile.ZipFile(SEEDS / "tiny.npz") as zf:
        npz_members = {n: zf.read(n) for n in zf.namelist() if n != "layer0.W.npy"}
    head = io.BytesIO()
    np.lib.format.write_array_header_1_0(head, {"descr": "<f8", "fortran_order": False,
                                                "shape": ((BOMB_BYTES - 128) // 8,)})
    head = head.getvalue()
    assert len(head) == 128
    _write_bomb(MALICIOUS / "bomb_array.npz", "layer0.W.npy", head, npz_members)


def torch_pickle(tensors: dict[str, tuple[int, tuple, tuple]]) -> bytes:
    """A torch.save data.pkl: name -> (storage numel, size, stride), storage keys "0", "1", ..."""
    import collections

    import torch

    class Storage:
        def __init__(self, key: str, numel: int):
            self.key, self.numel = key, numel

    class Tensor:
        def __init__(self, storage: Storage, size: tuple, stride: tuple):
            self.args = (storage, 0, size, stride, False, collections.OrderedDict())

        def __reduce__(self):
            return torch._utils._rebuild_tensor_v2, self.args

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, Storage):
                return ("storage", torch.FloatStorage, obj.key, "cpu", obj.numel)
            return None

    obj = {name: Tensor(Storage(str(i), numel), size, stride)
           for i, (name, (numel, size, stride)) in enumerate(tensors.items())}
    buf = io.BytesIO()
    Pickler(buf, protocol=2).dump(obj)
    return buf.getvalue()


def _write_zip(path: Path, members: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for n, data in members.items():
            zf.writestr(zipfile.ZipInfo(n, date_time=(2020, 1, 1, 0, 0, 0)), data)


def main() -> None:
    os.environ.setdefault("KERAS_BACKEND", "torch")
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["STREAMLSTM_FUZZ_MARKER"] = str(Path(tmp) / "marker")  # payloads run while saving
        make_seeds()
        make_pickles()
        make_keras_lambda()
        make_onnx_external()
        make_bombs()
        print("control: Keras (safe_mode=False) runs the Lambda payload:", check_keras_payload(Path(tmp) / "m2"))
    for p in sorted(HERE.glob("*/*")):
        print(f"{p.relative_to(HERE)}: {p.stat().st_size} bytes")
    shutil.rmtree(HERE / "__pycache__", ignore_errors=True)


if __name__ == "__main__":
    main()
