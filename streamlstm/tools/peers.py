"""The frameworks the benchmark compares, one small adapter each.

Every adapter advances one stream: ``step_fn()`` returns a one-argument callable that takes a
frame (I,) and returns that frame's output, carrying the state between calls the way its
framework needs (explicit state tensors fed back for onnxruntime and tract, state tuples for
PyTorch, inside the Session for streamlstm). ``reset()`` returns to the initial state;
``chunk(X)`` advances T frames in one call where the framework can. onnxruntime, torch and
tract are imported only when an adapter is built; ``make_peers`` skips, with a note, whatever
is not installed. On two or more cores, models with products large enough to share also run
as "streamlstm (2 threads)" (``Model.session(threads=2)``).
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
import warnings
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .. import Model
from .probes import shares_products

StepFn = Callable[[np.ndarray], np.ndarray]


class Peer:
    """One framework running one stream of one model."""

    name: str = ""
    framework: str = ""
    threads: int | None = None
    note: str = ""

    def reset(self) -> None:
        raise NotImplementedError

    def step_fn(self) -> StepFn:
        """The one-frame step of the current stream; fetch it again after ``reset()``."""
        raise NotImplementedError

    def chunk(self, X: np.ndarray) -> np.ndarray:
        """Advance T frames (T, I) -> (T, O) in one call, continuing the stream."""
        raise NotImplementedError(f"{self.name}: no chunk mode")

    def stream(self, X: np.ndarray) -> np.ndarray:
        """Outputs (T, O) of stepping T frames one by one from a fresh state."""
        self.reset()
        f = self.step_fn()
        return np.stack([np.array(f(x), copy=True).reshape(-1) for x in X])


class StreamlstmPeer(Peer):
    framework = "streamlstm"

    def __init__(self, model: Model, threads: int = 1):
        self.name = "streamlstm" if threads == 1 else f"streamlstm ({threads} threads)"
        self.threads = threads
        self.model = model
        self.session = model.session(threads=threads)
        self.out = np.empty(model.output_size, model.dtype)

    def reset(self) -> None:
        self.session.reset()

    def step_fn(self) -> StepFn:
        return self.session.stepper(self.out)

    def chunk(self, X: np.ndarray) -> np.ndarray:
        return self.session.run(X) if self.model.streamable else self.model.run(X)


# ---------------------------------------------------------------------------- ONNX models
_ORT_DTYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(float16)": np.float16,
               "tensor(int64)": np.int64}  # int64: token ids


@dataclass
class OnnxIO:
    """How to drive an ONNX model one frame at a time: its data input, output and state pairs."""

    x: str
    frame_shape: tuple
    x_dtype: type
    y: str
    states: list = field(default_factory=list)      # (input name, output name, shape, dtype)
    defaults: dict = field(default_factory=dict)    # state input -> initial value (learned initial states)
    time_axis: int | None = None                    # axis of T in the data input, when known
    outputs: list = field(default_factory=list)     # every graph output, in order
    constants: dict = field(default_factory=dict)   # inputs fed the same value every call (silero's sr)

    def seq_shape(self, T: int) -> tuple:
        shape = list(self.frame_shape)
        shape[self.time_axis] = T
        return tuple(shape)

    def initial(self, name: str, shape: tuple, dtype) -> np.ndarray:
        v = self.defaults.get(name)
        return np.zeros(shape, dtype) if v is None else np.array(v, dtype=dtype).reshape(shape)


def _dims(shape) -> list:
    return [d if isinstance(d, int) and d >= 0 else None for d in (shape or [])]


def _pair_name(name: str) -> list[str]:
    subs = [("_in_", "_out_"), ("_in", "_out"), ("in_", "out_"), ("input", "output"), ("Input", "Output"),
            ("_i", "_o"), ("in", "out")]
    return [name.replace(a, b) for a, b in subs if a in name]


def analyse_onnx(sess, input_size: int, output_size: int, model_bytes: bytes | None = None) -> OnnxIO:
    """Find data input, output and state pairs of an onnxruntime session's model.

    The data input is the first input whose last dimension is ``input_size``; the output is the
    first graph output; every other input must pair with an output (by name, e.g. ``h_in`` ->
    ``h_out``, else by shape, else in order among outputs of undeclared shape), or ValueError;
    callers check the pairing by comparing outputs with streamlstm's. Overridable initializers that pair with an output
    by name are states with a learned initial value (read from ``model_bytes``).
    """
    inputs = sess.get_inputs()
    outputs = sess.get_outputs()
    over = sess.get_overridable_initializers()
    x = next((i for i in inputs if _dims(i.shape) and _dims(i.shape)[-1] == input_size), None)
    if x is None:
        raise ValueError(f"no input has {input_size} features in its last dimension: "
                         f"{[(i.name, i.shape) for i in inputs]}")
    dims = _dims(x.shape)
    lead = dims[:-1]
    if any(d not in (None, 1) for d in lead):
        raise ValueError(f"input {x.name!r} {x.shape}: a fixed dimension > 1 besides the features")
    frame_shape = tuple([1] * len(lead) + [input_size])
    free = [k for k, d in enumerate(lead) if d is None]
    time_axis = free[0] if len(free) == 1 else (0 if len(lead) == 1 else None)
    y = outputs[0]
    free_out = {o.name: o for o in outputs[1:]}
    states = []

    def pair(inp, by_shape: bool):
        for cand in _pair_name(inp.name):
            if cand in free_out:
                return free_out.pop(cand)
        if by_shape:
            for name, o in list(free_out.items()):
                if _dims(o.shape) == _dims(inp.shape):
                    return free_out.pop(name)
            for name, o in list(free_out.items()):  # undeclared shapes: pair in order
                if not _dims(o.shape) or None in _dims(o.shape):
                    return free_out.pop(name)
        return None

    for inp in inputs:
        if inp.name == x.name:
            continue
        o = pair(inp, True)
        if o is None or None in _dims(inp.shape):
            raise ValueError(f"input {inp.name!r} {inp.shape} is neither the data input nor a state "
                             "input with a matching output of fixed shape")
        states.append((inp.name, o.name, tuple(_dims(inp.shape)), _ORT_DTYPES.get(inp.type, np.float32)))
    learned = []
    for inp in over:
        o = pair(inp, False)
        if o is not None and None not in _dims(inp.shape):
            states.append((inp.name, o.name, tuple(_dims(inp.shape)), _ORT_DTYPES.get(inp.type, np.float32)))
            learned.append(inp.name)
    defaults = _initializer_values(model_bytes, learned) if learned else {}
    return OnnxIO(x.name, frame_shape, _ORT_DTYPES.get(x.type, np.float32), y.name, states, defaults, time_axis,
                  [o.name for o in outputs])


def _initializer_values(model_bytes: bytes | None, names: list[str]) -> dict:
    if model_bytes is None:
        raise ValueError(f"state inputs {names} have default values; pass the model bytes to read them")
    import onnx
    from onnx import numpy_helper

    g = onnx.load_from_string(model_bytes).graph
    return {t.name: numpy_helper.to_array(t) for t in g.initializer if t.name in names}


def _without_initializers(model_bytes: bytes, names: list[str]) -> bytes:
    import onnx

    m = onnx.load_from_string(model_bytes)
    keep = [t for t in m.graph.initializer if t.name not in names]
    del m.graph.initializer[:]
    m.graph.initializer.extend(keep)
    return m.SerializeToString()


def ort_session(model_bytes: bytes, threads: int | None):
    """An onnxruntime CPU session; ``threads`` None means onnxruntime's default thread pool."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads is not None:
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(model_bytes, sess_options=so, providers=["CPUExecutionProvider"])


def _threads_label(threads: int | None) -> str:
    return "default threads" if threads is None else f"{threads} thread" + ("s" if threads != 1 else "")


class OrtRunPeer(Peer):
    """onnxruntime ``InferenceSession.run``: a feed dict per call, state outputs fed back."""

    framework = "onnxruntime"

    def __init__(self, sess, io: OnnxIO, threads: int | None, label: str = "run"):
        self.name = f"onnxruntime {label} ({_threads_label(threads)})"
        self.sess, self.io, self.threads = sess, io, threads
        self.outputs = [io.y] + [s[1] for s in io.states]
        self.reset()

    def reset(self) -> None:
        self.feeds = {**self.io.constants,
                      **{i: self.io.initial(i, shape, dt) for i, _, shape, dt in self.io.states}}

    def step_fn(self) -> StepFn:
        run, outputs, feeds = self.sess.run, self.outputs, self.feeds
        xname, shape, dt = self.io.x, self.io.frame_shape, self.io.x_dtype
        names = [s[0] for s in self.io.states]

        def step(x):
            feeds[xname] = x.reshape(shape) if x.dtype == dt else x.astype(dt).reshape(shape)
            outs = run(outputs, feeds)
            for n, v in zip(names, outs[1:]):
                feeds[n] = v
            return outs[0]
        return step

    def chunk(self, X: np.ndarray) -> np.ndarray:
        if self.io.time_axis is None:
            raise NotImplementedError("the model's time axis is unknown")
        feeds = self.feeds
        feeds[self.io.x] = np.ascontiguousarray(X, dtype=self.io.x_dtype).reshape(self.io.seq_shape(len(X)))
        outs = self.sess.run(self.outputs, feeds)
        for (n, *_), v in zip(self.io.states, outs[1:]):
            feeds[n] = v
        return outs[0].reshape(len(X), -1)


class OrtBindingPeer(Peer):
    """onnxruntime ``run_with_iobinding``: every tensor bound once to preallocated buffers; two
    bindings alternate so that each call's state outputs are the next call's state inputs."""

    framework = "onnxruntime"

    def __init__(self, sess, io: OnnxIO, threads: int | None):
        import onnxruntime as ort

        self.name = f"onnxruntime iobinding ({_threads_label(threads)})"
        self.sess, self.io, self.threads = sess, io, threads
        out_meta = {o.name: o for o in sess.get_outputs()}
        y_shape = tuple(1 if d is None else d for d in _dims(out_meta[io.y].shape))
        self.xbuf = np.zeros(io.frame_shape, io.x_dtype)
        self.xflat = self.xbuf.reshape(-1)
        self.ybuf = np.zeros(y_shape, _ORT_DTYPES.get(out_meta[io.y].type, np.float32))
        self.yflat = self.ybuf.reshape(-1)
        self.bufs = [[np.zeros(shape, dt) for _ in range(2)] for _, _, shape, dt in io.states]
        ov = ort.OrtValue.ortvalue_from_numpy
        x_ov, y_ov = ov(self.xbuf), ov(self.ybuf)
        self.bindings = []
        for parity in range(2):
            b = sess.io_binding()
            b.bind_ortvalue_input(io.x, x_ov)
            b.bind_ortvalue_output(io.y, y_ov)
            for name, value in io.constants.items():
                b.bind_ortvalue_input(name, ov(np.ascontiguousarray(value)))
            for (i, o, _, _), pair in zip(io.states, self.bufs):
                b.bind_ortvalue_input(i, ov(pair[parity]))
                b.bind_ortvalue_output(o, ov(pair[1 - parity]))
            self.bindings.append(b)
        self.reset()

    def reset(self) -> None:
        for (i, _, shape, dt), pair in zip(self.io.states, self.bufs):
            pair[0][...] = self.io.initial(i, shape, dt)
        self.parity = [0]

    def step_fn(self) -> StepFn:
        run, (b0, b1) = self.sess.run_with_iobinding, self.bindings
        xflat, yflat, parity = self.xflat, self.yflat, self.parity

        def step(x):
            xflat[:] = x
            if parity[0]:
                run(b1)
                parity[0] = 0
            else:
                run(b0)
                parity[0] = 1
            return yflat
        return step


# ---------------------------------------------------------------------------- PyTorch
class TorchPeer(Peer):
    """PyTorch nn.LSTM/GRU/RNN + nn.Linear built from the network, under ``inference_mode``.

    PyTorch's oneDNN RNN path is slower than its native one for one-frame calls on small
    layers and faster on large ones; the faster of the two is picked on a few warm-up steps."""

    framework = "pytorch"

    def __init__(self, model: Model, threads: int):
        import torch

        from ..converters.torch.export import to_torch

        torch.set_num_threads(threads)
        warnings.filterwarnings("ignore", message="LSTM with projections is not supported with oneDNN")
        self.torch = torch
        self.name = f"pytorch ({_threads_label(threads)})"
        self.threads = threads
        self.module = to_torch(model.network, model.dtype.name)
        self.onednn = bool(torch.backends.mkldnn.is_available())
        if self.onednn:
            x = np.zeros(model.input_size, model.dtype)
            self.onednn = min((self._time(x, on), not on) for on in (True, False))[1] is False
            self.note = f"oneDNN RNN path {'on' if self.onednn else 'off'} (the faster here)"
        self.reset()

    def _time(self, x: np.ndarray, onednn: bool) -> int:
        import time

        self.onednn = onednn
        self.reset()
        f = self.step_fn()
        for _ in range(5):
            f(x)
        ts = []
        for _ in range(30):
            t0 = time.perf_counter_ns()
            f(x)
            ts.append(time.perf_counter_ns() - t0)
        return int(np.median(ts))

    def reset(self) -> None:
        with self.torch.inference_mode():
            self.state = [self.module.initial_state()]

    def step_fn(self) -> StepFn:
        torch, module, box = self.torch, self.module, self.state
        torch._C._set_mkldnn_enabled(self.onednn)
        from_numpy = torch.from_numpy

        def step(x):
            with torch.inference_mode():
                y, box[0] = module(from_numpy(x).view(1, 1, -1), box[0])
                return y.view(-1).numpy()
        return step

    def chunk(self, X: np.ndarray) -> np.ndarray:
        self.torch._C._set_mkldnn_enabled(self.onednn)
        with self.torch.inference_mode():
            y, self.state[0] = self.module(self.torch.from_numpy(np.ascontiguousarray(X))[:, None, :], self.state[0])
            return y[:, 0].numpy()


# ---------------------------------------------------------------------------- tract
class TractPeer(Peer):
    """tract (Sonos) via its Python binding: the ONNX model with the frame shape fixed, states fed back."""

    framework = "tract"

    def __init__(self, model_bytes: bytes, io: OnnxIO, T: int | None = None):
        import tract

        self.name = "tract"
        self.threads = 1
        self.io = io
        if io.defaults:  # tract folds initializers that are also inputs into constants
            model_bytes = _without_initializers(model_bytes, list(io.defaults))
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "model.onnx")
            with open(path, "wb") as fh:
                fh.write(model_bytes)
            im = tract.onnx().load(path)
            names = [im.input_name(k) for k in range(im.input_count())]
            kind = {np.float32: "f32", np.float64: "f64", np.int64: "i64"}[io.x_dtype]
            shape = io.frame_shape if T is None else io.seq_shape(T)
            im.set_input_fact(names.index(io.x), ",".join(map(str, shape)) + "," + kind)
            self.runnable = im.into_model().into_runnable()
        state_names = [s[0] for s in io.states]
        if set(names) != {io.x, *state_names}:
            raise ValueError(f"tract sees inputs {names}, expected {[io.x, *state_names]}")
        out_names = io.outputs  # the runnable keeps the model's output order
        self.order = [state_names.index(n) if n != io.x else -1 for n in names]
        self.out_index = [out_names.index(o) for o in [io.y] + [s[1] for s in io.states]]
        self.reset()

    def reset(self) -> None:
        self.tstate = self.runnable.spawn_state()
        self.states = [self.io.initial(i, shape, dt) for i, _, shape, dt in self.io.states]

    def step_fn(self) -> StepFn:
        run, states, order, shape = self.tstate.run, self.states, self.order, self.io.frame_shape
        iy, ist = self.out_index[0], self.out_index[1:]
        n, dt = len(states), self.io.x_dtype

        def step(x):
            xs = x.reshape(shape) if x.dtype == dt else x.astype(dt).reshape(shape)
            outs = run([xs if k < 0 else states[k] for k in order])
            for j in range(n):
                states[j] = outs[ist[j]]
            return outs[iy].to_numpy()
        return step

    def chunk(self, X: np.ndarray) -> np.ndarray:
        xs = np.ascontiguousarray(X, dtype=self.io.x_dtype).reshape(self.io.seq_shape(len(X)))
        outs = self.tstate.run([xs if k < 0 else self.states[k] for k in self.order])
        for j, k in enumerate(self.out_index[1:]):
            self.states[j] = outs[k]
        return outs[self.out_index[0]].to_numpy().reshape(len(X), -1)


# ---------------------------------------------------------------------------- assembly
FRAMEWORKS = ("streamlstm", "onnxruntime", "pytorch", "tract")


def installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


@dataclass
class Skipped:
    """A framework that could not run, with the reason."""

    name: str
    framework: str
    note: str


def make_peers(model: Model, onnx_bytes: bytes | None, *, threads: int = 1, frameworks=FRAMEWORKS,
               onnx_note: str = "", io: OnnxIO | None = None) -> tuple[list[Peer], list[Skipped]]:
    """Adapters for every requested framework that can run ``model``; the rest as Skipped.
    ``io`` describes how to step ``onnx_bytes`` when ``analyse_onnx`` cannot find it out."""
    peers: list[Peer] = [StreamlstmPeer(model)]
    if model.streamable and (os.cpu_count() or 1) >= 2 and shares_products(model):
        peers.append(StreamlstmPeer(model, threads=2))
    skipped: list[Skipped] = []
    wanted = set(frameworks)
    # io: the caller's description of onnx_bytes, else analyse_onnx finds it
    if not model.streamable:
        return [], [Skipped("all frameworks", "-", "the model runs backwards in time (reverse/bidirectional): "
                            "no frame-by-frame stepping; see the whole-sequence (chunk) table")]
    if onnx_bytes is None and wanted & {"onnxruntime", "tract"}:
        skipped.append(Skipped(" and ".join(sorted(wanted & {"onnxruntime", "tract"})), "onnxruntime",
                               onnx_note or "no ONNX form of this model"))
    if "onnxruntime" in wanted and onnx_bytes is not None:
        if not installed("onnxruntime"):
            skipped.append(Skipped("onnxruntime", "onnxruntime", "onnxruntime is not installed"))
        else:
            for t in (threads, None):
                try:
                    sess = ort_session(onnx_bytes, t)
                    io = io or analyse_onnx(sess, model.input_size, model.output_size, onnx_bytes)
                    peers.append(OrtRunPeer(sess, io, t))
                    peers.append(OrtBindingPeer(sess, io, t))
                except Exception as e:  # noqa: BLE001 - any failure is reported, not fatal
                    skipped.append(Skipped(f"onnxruntime ({_threads_label(t)})", "onnxruntime",
                                           f"{type(e).__name__}: {e}"))
                    break
    if "pytorch" in wanted:
        if not installed("torch"):
            skipped.append(Skipped("pytorch", "pytorch", "torch is not installed"))
        else:
            try:
                peers.append(TorchPeer(model, threads))
            except Exception as e:  # noqa: BLE001
                skipped.append(Skipped("pytorch", "pytorch", f"{type(e).__name__}: {e}"))
    if "tract" in wanted and onnx_bytes is not None:
        if not installed("tract"):
            skipped.append(Skipped("tract", "tract", "tract is not installed (pip install tract)"))
        else:
            try:
                if io is None:
                    io = analyse_onnx(ort_session(onnx_bytes, 1), model.input_size, model.output_size, onnx_bytes)
                peers.append(TractPeer(onnx_bytes, io))
            except Exception as e:  # noqa: BLE001
                skipped.append(Skipped("tract", "tract", f"{type(e).__name__}: {str(e).splitlines()[0]}"))
    return peers, skipped
