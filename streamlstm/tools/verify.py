"""``streamlstm verify``: run a model file through streamlstm and through an independent origin.

The origin computes the outputs without streamlstm's import: ONNX files run in onnxruntime
(frame by frame with the state fed back when the model has state inputs/outputs, else the whole
sequence in one call); Keras files in Keras (loaded with ``safe_mode``); a PyTorch state dict
holds no code, so it runs in the user's own module (``module="pkg.mod:Class"``), which the
file's weights are loaded into with ``load_state_dict(strict=True)``, read by torch itself.
Native ``.npz`` files have no other origin than streamlstm: they run in onnxruntime on the
``Model.to_onnx()`` export, which checks the kernels, not an import. Each framework is imported
only here, when needed.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from dataclasses import asdict, dataclass, field
from typing import Any
from pathlib import Path

import numpy as np

from .. import Model, load
from .peers import OrtRunPeer, analyse_onnx, ort_session

TOLERANCE = 1e-4
MAX_FRAME_VALUES = 1 << 27   # random input values verify may allocate (frames x input size)
_STATE_KEYS = ("state_dict", "model_state_dict", "model", "module", "weights", "params")


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
        return self.error is None and bool(self.errors) and all(e <= self.tolerance for e in self.errors.values())

    def as_dict(self) -> dict:
        return {**asdict(self), "passed": self.passed}


def _origin(path: Path, fmt: str | None) -> str:
    if fmt is not None:
        return fmt
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


def _user_module(spec: str, args: Any):
    """An instance of the class ``spec`` names (``pkg.mod:Class``), built with ``args``."""
    import torch

    name, sep, qualname = spec.partition(":")
    if not sep or not name or not qualname:
        raise ValueError(f"--module: expected pkg.module:Class, got {spec!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # as `python -m` does, so a module next to the user is found
    try:
        obj = importlib.import_module(name)
    except ImportError as e:
        raise ValueError(f"--module: cannot import {name!r}: {e}") from None
    for part in qualname.split("."):
        if not hasattr(obj, part):
            raise ValueError(f"--module: {name!r} has no attribute {qualname!r}")
        obj = getattr(obj, part)
    if isinstance(args, dict):
        module = obj(**args)
    else:
        module = obj(*(args or ()))
    if not isinstance(module, torch.nn.Module):
        raise ValueError(f"--module: {spec} built a {type(module).__name__}, not a torch.nn.Module")
    return module


def _torch_state_dict(path: Path, key: str | None, prefix: str | None) -> dict:
    """The file's state dict, read by torch (or safetensors) itself rather than streamlstm."""
    import torch

    if path.suffix.lower() == ".safetensors":
        from safetensors.torch import load_file

        tree: Any = load_file(str(path))
    else:
        tree = torch.load(str(path), map_location="cpu", weights_only=True)

    def tensors(obj) -> bool:
        return isinstance(obj, dict) and bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())

    if key is not None:
        if not isinstance(tree, dict) or key not in tree:
            raise ValueError(f"{path}: no key {key!r} in the checkpoint")
        tree = tree[key]
    elif not tensors(tree) and isinstance(tree, dict):
        tree = next((tree[k] for k in _STATE_KEYS if tensors(tree.get(k))), tree)
    if not tensors(tree):
        raise ValueError(f"{path}: not a state dict (a mapping of names to tensors); pass --key")
    if prefix:
        pre = prefix if prefix.endswith(".") else prefix + "."
        tree = {k[len(pre):]: v for k, v in tree.items() if k.startswith(pre)}
    return tree


def _with_weights(module, path: Path, key: str | None, prefix: str | None, dtype: np.dtype):
    """``module`` holding the file's weights (strictly: every key, no more), in eval mode."""
    import torch

    try:
        module.load_state_dict(_torch_state_dict(path, key, prefix), strict=True)
    except RuntimeError as e:
        raise ValueError(f"{path}: the state dict does not fit {type(module).__name__}: {e}") from None
    return module.to(torch.float64 if dtype == np.float64 else torch.float32).eval()


def _torch(module, X: np.ndarray, ours: np.ndarray) -> tuple[str, dict]:
    """The user's module over the whole sequence in one forward() call, batch first or time first
    (whichever matches: a wrong model matches in neither)."""
    import torch

    x = torch.from_numpy(np.ascontiguousarray(X))
    best, failures = None, []
    for layout, shaped in (("batch first (1, T, I)", x[None]), ("time first (T, 1, I)", x[:, None])):
        try:
            with torch.inference_mode():
                y = module(shaped)
            if isinstance(y, (tuple, list)):
                y = y[0]
            err = _max_err(y.detach().numpy(), ours)
        except Exception as e:  # noqa: BLE001 - this layout does not fit; try the next
            failures.append(f"{layout}: {type(e).__name__}: {e}")
            continue
        if best is None or err < best[1]:
            best = (layout, err)
    if best is None:
        raise RuntimeError(f"{type(module).__name__}.forward() failed on both layouts: {'; '.join(failures)}")
    return (f"your {type(module).__name__}.forward() in PyTorch {torch.__version__} with the file's weights, "
            f"whole sequence, {best[0]}", {"output": best[1]})


_NEEDS = {"onnx": "onnxruntime", "native": "onnxruntime", "torch": "torch", "keras": "keras"}


def verify(path: str | os.PathLike, *, frames: int = 500, seed: int = 0, tolerance: float = TOLERANCE,
           module: str | None = None, module_args: Any = None, **options) -> Verification:
    """Stream ``frames`` random frames through streamlstm and an independent origin.

    ``module`` (``"pkg.mod:Class"``, built with ``module_args``: a dict of keywords or a list)
    is required for PyTorch files. Bad arguments raise ValueError before any work; a failure of
    the origin is reported in ``Verification.error``.
    """
    p = Path(path)
    origin = _origin(p, options.get("format"))
    if origin == "torch" and module is None:
        raise ValueError(f"{p}: a PyTorch state dict holds no forward(), so only your own module can say what "
                         "it computes: pass --module pkg.mod:Class (module='pkg.mod:Class')")
    if origin != "torch" and module is not None:
        raise ValueError(f"{p}: --module applies to PyTorch files; this is a {origin} file")
    need = _NEEDS[origin]
    if importlib.util.find_spec(need) is None:
        raise ValueError(f"verifying a {origin} file needs {need}: pip install {need}")
    model = load(p, **options)
    if frames < 1 or frames * model.input_size > MAX_FRAME_VALUES:
        raise ValueError(f"frames: expected 1 to {MAX_FRAME_VALUES // model.input_size:,} for an input of "
                         f"{model.input_size} values, got {frames:,}")
    user_module = None
    if module is not None:
        user_module = _with_weights(_user_module(module, module_args), p, options.get("key"),
                                    options.get("prefix"), model.dtype)
    X = np.random.default_rng(seed).standard_normal((frames, model.input_size)).astype(model.dtype)
    v = Verification(str(p), need, "", frames, tolerance=tolerance)
    ours = _ours(model, X)
    try:
        if origin == "onnx":
            v.how, v.errors = _onnx(model, p.read_bytes(), X, ours)
        elif origin == "native":
            how, v.errors = _onnx(model, model.to_onnx().SerializeToString(), X, ours)
            v.how = f"Model.to_onnx() export (checks the kernels, not an import), {how}"
        elif origin == "torch":
            v.how, v.errors = _torch(user_module, X, ours)
        else:
            v.how, v.errors = _keras(p, X, ours)
    except Exception as e:  # noqa: BLE001 - reported, exit code 1
        v.error = f"{type(e).__name__}: {e}"
    return v
