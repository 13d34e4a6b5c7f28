"""``streamlstm verify``: run a model file through streamlstm and through its framework of origin.

ONNX files run in onnxruntime (frame by frame with the state fed back when the model has state
inputs/outputs, else the whole sequence in one call); PyTorch checkpoints in PyTorch (a state
dict holds no code, so the modules are nn.LSTM/GRU/RNN/Linear rebuilt from the imported
weights); Keras files in Keras (loaded with ``safe_mode``); native ``.npz`` files in
onnxruntime on the ``Model.to_onnx()`` export. Each framework is imported only here, when needed.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .loading import load
from .model import Model
from .peers import OrtRunPeer, analyse_onnx, ort_session

TOLERANCE = 1e-4


@dataclass
class Verification:
    path: str
    framework: str
    how: str
    frames: int
    errors: dict = field(default_factory=dict)   # output name -> max abs error
    tolerance: float = TOLERANCE
    error: str | None = None                     # why it could not run

    @property
    def passed(self) -> bool:
        return self.error is None and all(e <= self.tolerance for e in self.errors.values())


def _origin(path: Path) -> str:
    ext = path.suffix.lower()
    return {".onnx": "onnx", ".npz": "native", ".keras": "keras", ".h5": "keras", ".hdf5": "keras"}.get(ext, "torch")


def _ours(model: Model, X: np.ndarray) -> np.ndarray:
    if not model.streamable:
        return model.run(X)
    s = model.session()
    return np.stack([s.step(x) for x in X])


def _max_err(theirs: np.ndarray, ours: np.ndarray) -> float:
    T, O = ours.shape
    theirs = np.asarray(theirs, dtype=np.float64)
    if theirs.size == T * O:
        d = np.abs(theirs.reshape(T, O) - ours)
    elif theirs.size == O:  # the framework returns only the last frame's output
        d = np.abs(theirs.reshape(O) - ours[-1])
    else:
        raise ValueError(f"output of shape {theirs.shape} does not hold {T} frames x {O} values")
    return float(d.max()) if np.all(np.isfinite(d)) else float("inf")


def _onnx(model: Model, data: bytes, X: np.ndarray, ours: np.ndarray) -> tuple[str, dict]:
    sess = ort_session(data, None)
    io = analyse_onnx(sess, model.input_size, model.output_size, data)
    if io.states and model.streamable:
        theirs = OrtRunPeer(sess, io, None).stream(X)
        return "frame by frame, state outputs fed back as inputs", {io.y: _max_err(theirs, ours)}
    feeds = {i: io.initial(i, shape, dt) for i, _, shape, dt in io.states}
    axes = [io.time_axis] if io.time_axis is not None else list(range(len(io.frame_shape) - 1))
    best = None
    for ax in axes:
        shape = list(io.frame_shape)
        shape[ax] = len(X)
        feeds[io.x] = np.ascontiguousarray(X, dtype=io.x_dtype).reshape(shape)
        try:
            err = _max_err(sess.run([io.y], feeds)[0], ours)
        except Exception:  # noqa: BLE001 - this layout does not fit; try the next
            continue
        if best is None or err < best[1]:
            best = (ax, err)
    if best is None:
        raise ValueError(f"onnxruntime could not run input {io.x!r} with the frames along any axis")
    layout = "" if len(axes) == 1 else f" (time on axis {best[0]} of {io.x!r})"
    return f"whole sequence in one call{layout}", {io.y: best[1]}


def _keras(path: Path, X: np.ndarray, ours: np.ndarray) -> tuple[str, dict]:
    if "KERAS_BACKEND" not in os.environ and importlib.util.find_spec("tensorflow") is None:
        os.environ["KERAS_BACKEND"] = "torch" if importlib.util.find_spec("torch") else "numpy"
    import keras

    km = keras.saving.load_model(str(path), compile=False, safe_mode=True)
    T = km.inputs[0].shape[1] if len(km.inputs[0].shape) == 3 else None
    if isinstance(T, int) and T != len(X):  # the model fixes the sequence length
        if T > len(X):
            raise ValueError(f"the Keras model takes sequences of {T} frames; pass --frames {T}")
        X, ours = X[:T], ours[:T]
    y = keras.ops.convert_to_numpy(km(X[None].astype("float32"), training=False))
    return f"whole sequence in one call (Keras {keras.__version__}, backend {keras.backend.backend()})", \
        {"output": _max_err(y, ours)}


def _torch(model: Model, X: np.ndarray, ours: np.ndarray) -> tuple[str, dict]:
    import torch

    from .converters.torch.export import to_torch

    m = to_torch(model.network, model.dtype.name)
    with torch.inference_mode():
        y, _ = m(torch.from_numpy(np.ascontiguousarray(X))[:, None, :], m.initial_state())
    return (f"PyTorch {torch.__version__} nn modules rebuilt from the file's weights, whole sequence",
            {"output": _max_err(y.numpy(), ours)})


_NEEDS = {"onnx": "onnxruntime", "native": "onnxruntime", "torch": "torch", "keras": "keras"}


def verify(path: str | os.PathLike, *, frames: int = 500, seed: int = 0, tolerance: float = TOLERANCE,
           **options) -> Verification:
    """Stream ``frames`` random frames through streamlstm and the file's framework of origin."""
    p = Path(path)
    origin = _origin(p)
    model = load(p, **options)
    X = np.random.default_rng(seed).standard_normal((frames, model.input_size)).astype(model.dtype)
    need = _NEEDS[origin]
    v = Verification(str(p), need, "", frames, tolerance=tolerance)
    if importlib.util.find_spec(need) is None:
        v.error = f"{need} is not installed"
        return v
    ours = _ours(model, X)
    try:
        if origin == "onnx":
            v.how, v.errors = _onnx(model, p.read_bytes(), X, ours)
        elif origin == "native":
            how, v.errors = _onnx(model, model.to_onnx().SerializeToString(), X, ours)
            v.how = f"Model.to_onnx() export, {how}"
        elif origin == "torch":
            v.how, v.errors = _torch(model, X, ours)
        else:
            v.how, v.errors = _keras(p, X, ours)
    except Exception as e:  # noqa: BLE001 - reported, exit code 2
        v.error = f"{type(e).__name__}: {e}"
    return v

