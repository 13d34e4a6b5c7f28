"""Model (immutable, shareable across threads) and Session (the mutable state of one stream).

A Session owns its state vector and scratch; ``step`` validates the frame in Python (shape,
dtype, contiguity), then makes one native call that checks for NaN/Inf before touching the
state and advances every layer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np

from numba import from_dtype, types

from .frames import NEEDS_FUTURE, bad_frame, check_frame, check_out, check_sequence, check_sequence_out, check_state, token_frame
from .kernels import layout as L
from .helper import Helper
from .kernels.config import entry_point
from .kernels.engine import CTX_FIELDS, WRONG_SIZE, advance, advance_at, advance_at_shared, advance_shared
from .kernels.kindset import entry_for
from .kernels.lean_cache import lean_cache
from .kernels.split import PARKS_IN_KERNEL
from .network import Network
from .plan import Plan, build_plan
from .pool import SessionPool
from . import state as state_format


def output_splitter(widths):
    """None for one output, else a function splitting the last axis of an output array into
    the views of the named outputs (``Network.outputs``)."""
    if widths is None:
        return None
    bounds = np.cumsum((0,) + tuple(widths))
    cuts = list(zip(bounds[:-1].tolist(), bounds[1:].tolist()))
    return lambda Y: tuple(Y[..., a:b] for a, b in cuts)


def _any_layout(dtype: np.dtype):
    """1-D arrays of ``dtype`` of any layout ('A'): strided frames need no copy, callers no
    contiguity check (entry points do not check dtype or rank: the Session checks class, dtype
    and rank before each call)."""
    return types.Array(from_dtype(dtype), 1, "A")


class Kernel(NamedTuple):
    """The compiled network step and its read-only arrays, for calling from your own ``@njit`` code.

    ``step(weights, table, state, work, x, y) -> int`` advances one stream (``state``, ``work``
    from ``Session.buffers()``) by the flat frames ``x`` (T*I values) into ``y`` (T*O values),
    in place, without the GIL; ``work`` must hold ``work_size(T)`` elements (a Session's holds
    ``work_size(1)``). Returns 0, or -(t+1) when frame t holds NaN/Inf (state untouched).
    ``x``/``y`` are 1-D arrays of the model's dtype. See ``examples/audio_callback.py``.
    """

    step: object
    weights: np.ndarray
    table: np.ndarray
    work_size: object


class Model:
    """An immutable, planned network: open sessions (streams) on it, or run whole sequences."""

    def __init__(self, network: Network, dtype: str = "float32", *, fast_activations: bool | None = None,
                 weights: str = "float"):
        if not isinstance(network, Network):
            raise TypeError(f"network: expected a streamlstm Network, got {type(network).__name__}")
        self._plan: Plan = build_plan(network, str(np.dtype(dtype)) if dtype in (np.float32, np.float64)
                                      else dtype, fast_activations, weights)
        self._step_fn = None
        self._step_at_fns = {}
        self._shared_fn = None
        self._fingerprint: bytes | None = None
        self._split = output_splitter(network.outputs)

    def __getstate__(self) -> dict:
        # Compiled kernels do not pickle: a copy plans the same network again and compiles lazily.
        p = self._plan
        return {"network": p.network, "dtype": p.dtype.name, "fast_activations": p.fast_activations,
                "weights": p.weight_format}

    def __setstate__(self, st: dict) -> None:
        self.__init__(st["network"], st["dtype"], fast_activations=st["fast_activations"],
                      weights=st["weights"])

    @property
    def fingerprint(self) -> bytes:
        """32 bytes naming this model's function: layers, weights, dtype and numerics."""
        if self._fingerprint is None:
            p = self._plan
            self._fingerprint = state_format.fingerprint(p.network, p.dtype, p.weight_format,
                                                         p.fast_activations)
        return self._fingerprint

    # ------------------------------------------------------------------ description
    @property
    def network(self) -> Network:
        return self._plan.network

    @property
    def plan(self) -> Plan:
        return self._plan

    @property
    def input_size(self) -> int:
        return self._plan.input_size

    @property
    def output_size(self) -> int:
        return self._plan.output_size

    @property
    def dtype(self) -> np.dtype:
        return self._plan.dtype

    @property
    def state_size(self) -> int:
        return self._plan.state_size

    @property
    def streamable(self) -> bool:
        """False when a layer runs backwards in time (reverse/bidirectional): only ``run`` works."""
        return self._plan.streamable

    def summary(self) -> str:
        p = self._plan
        nparams = sum(a.size for l in p.network.layers for a in l.arrays().values())
        return (f"{p.network.summary()}\n  dtype={p.dtype.name} params={nparams} "
                f"state={p.state_size} weight_bytes={p.weight_bytes} "
                f"activations={'fast' if p.fast_activations else 'exact'} weights={p.weight_format}")

    def __repr__(self) -> str:
        return (f"<streamlstm.Model {self.input_size}->{self.output_size} {self.dtype.name} "
                f"layers={len(self.network.layers)}>")

    # ------------------------------------------------------------------ running
    def _kernel(self):
        if self._step_fn is None:
            p = self._plan
            work = types.Array(from_dtype(p.dtype), 1, "C")
            self._step_fn = entry_point(entry_for(advance, p.kinds),
                                        (p.weights, p.table, work, work, _any_layout(p.dtype), _any_layout(p.dtype)))
        return self._step_fn

    def _shared_kernel(self):
        if self._shared_fn is None:
            p = self._plan
            work = types.Array(from_dtype(p.dtype), 1, "C")
            self._shared_fn = entry_point(entry_for(advance_shared, p.kinds),
                                          (p.weights, p.table, work, work, _any_layout(p.dtype),
                                           _any_layout(p.dtype), types.Array(types.int64, 1, "C")))
        return self._shared_fn

    def _step_kernel(self, shared: bool = False):
        """The one-frame entry point of a one-thread session, or (``shared``) of a two-thread one."""
        fn = self._step_at_fns.get(shared)
        if fn is None:
            dt = self._plan.dtype
            entry = entry_for(advance_at_shared if shared else advance_at, self._plan.kinds, lean_cache)
            fn = self._step_at_fns[shared] = entry_point(entry, (types.int64, _any_layout(dt), _any_layout(dt)))
        return fn

    @property
    def vocabulary(self) -> int:
        """The number of token ids when the input is one token id per frame (an Embedding
        first), else 0."""
        return int(self._plan.table[0, L.HDR_VOCAB])

    def _sequence(self, X) -> np.ndarray:
        p = self._plan
        if self.vocabulary and np.ndim(X) == 1:
            X = np.asarray(X).reshape(-1, 1)  # a token model takes a plain (T,) array of ids
        return check_sequence(X, "X", p.input_size, p.dtype)

    @property
    def output_widths(self) -> tuple[int, ...]:
        """The widths of the model's outputs (one entry unless the network names several)."""
        return self.network.outputs or (self.output_size,)

    def run(self, X) -> np.ndarray:
        """Run a whole sequence (T, I) -> (T, O) from a fresh (initial) state. Bidirectional OK.

        A model whose input is token ids also takes X as a (T,) integer array. A model with
        several outputs returns a tuple of (T, width) arrays."""
        p = self._plan
        X = self._sequence(X)
        state = p.initial_state.copy()
        Y = _run_chunk(self, state, X, np.empty(p.work_size(X.shape[0]), p.dtype))
        return Y if self._split is None else self._split(Y)

    def session(self, *, threads: int = 1) -> "Session":
        """Open one stream, starting from the initial (zero or learned) state.

        ``threads=2`` gives the stream a helper thread that computes half of every large
        matrix product of ``step`` and ``run`` (bit-identical results; worth it when the weights exceed
        the core's cache, e.g. the zoo's ``big``). The helper spins while steps keep coming and
        sleeps after a pause without one; ``Session.close()`` stops it."""
        return Session(self, threads=threads)

    def pool(self, capacity: int, *, threads: int = 1) -> "SessionPool":
        """Open a pool of up to ``capacity`` streams whose states live in one slab.

        ``threads`` > 1 splits steps of many streams over that many threads."""
        return SessionPool(self, capacity, threads=threads)

    def kernel(self) -> Kernel:
        """The jitted step function and the prebound arrays, to call a session's step from @njit code."""
        p = self._plan
        if not p.streamable:
            raise ValueError(f"Model.kernel: this model has {NEEDS_FUTURE}, so it cannot advance frame "
                             "by frame; use Model.run(X) on whole sequences.")
        return Kernel(entry_for(advance, p.kinds), p.weights, p.table, p.work_size)

    def save(self, path: str | Path) -> None:
        """Write the network as a native ``.npz`` (loads without onnx/torch/keras)."""
        self.network.save(path)

    def to_onnx(self, path: str | Path | None = None):
        """Export as ONNX with explicit state inputs/outputs (one frame per call)."""
        from .converters.onnx import export_onnx

        return export_onnx(self.network, dtype=self.dtype.name, path=path)


def _run_chunk(model: Model, state: np.ndarray, X: np.ndarray, work: np.ndarray,
               Y: np.ndarray | None = None, helper: Helper | None = None) -> np.ndarray:
    p = model._plan
    T = X.shape[0]
    if Y is None:
        Y = np.empty((T, p.output_size), dtype=p.dtype)
    if T == 0:
        return Y
    args = (p.weights, p.table, state, work, X.reshape(-1), Y.reshape(-1))
    if helper is not None and helper.running:
        if helper.parked[0]:
            helper.wake.set()
        rc = model._shared_kernel()(*args, helper.mailbox)
    else:
        rc = model._kernel()(*args)
    if rc < 0:
        t = -rc - 1
        raise ValueError(f"X: frame {t} {bad_frame(X[t], model.vocabulary)}; the state is unchanged")
    return Y


def _step_error(rc: int, x: np.ndarray, out: np.ndarray, isize: int, osize: int, vocab: int) -> ValueError:
    if rc != WRONG_SIZE:
        return ValueError(f"x: frame {bad_frame(x, vocab)}; the session state is unchanged")
    if x.shape[0] != isize:
        return ValueError(f"x: expected {isize} values, got {x.shape[0]}")
    return ValueError(f"out: expected shape ({osize},), got {out.shape}")


def _prebound_step(fn, buffers: tuple, dtype: np.dtype, isize: int, osize: int, vocab: int = 0):
    """``Session.step`` as a closure over the kernel and the session's buffer addresses.

    Every name the hot path reads is a local of this closure rather than an attribute, which
    cuts the Python time around the native call. A model whose input is token ids (``vocab``)
    also takes a Python or NumPy integer, or a one-element integer array. Python checks what the kernel cannot see
    (class, dtype, rank, and that ``out`` is writeable); the kernel checks sizes and values.
    The last ``out`` that passed is remembered (and kept alive, so its identity cannot be
    reused): a caller stepping into the same buffer skips the shape and class checks, not the
    writeability check (a buffer can be made read-only between steps).

    The kernel finds ``buffers`` (weights, table, state, work, helper mailbox) by address: the
    closure keeps them alive, and they are only ever updated in place.
    """
    ctx = np.array([v for b in buffers for v in (b.ctypes.data, b.shape[0])], dtype=np.int64)
    assert ctx.size == CTX_FIELDS and all(b.flags.c_contiguous for b in buffers)
    ndarray, empty, address = np.ndarray, np.empty, ctx.ctypes.data
    checked_out = None

    def check_frame_(x, name, isize, dtype):
        if vocab:
            return token_frame(x, vocab, dtype)
        return check_frame(x, name, isize, dtype)

    def step(x, out=None):
        nonlocal checked_out
        if x.__class__ is not ndarray or x.dtype is not dtype or x.ndim != 1:
            x = check_frame_(x, "x", isize, dtype)
        if out is None:
            out = empty(osize, dtype)
        elif out is not checked_out or out.dtype is not dtype or out.ndim != 1 or not out.flags.writeable:
            if (out.__class__ is not ndarray or out.dtype is not dtype or out.ndim != 1
                    or not out.flags.writeable):
                out = check_out(out, dtype, osize)
            checked_out = out
        rc = fn(address, x, out)
        if rc:
            raise _step_error(rc, x, out, isize, osize, vocab)
        return out

    def bind(out: np.ndarray):
        """A one-argument step writing into ``out``, validated here once."""
        out = check_out(out, dtype, osize)

        def step_into(x):
            if x.__class__ is not ndarray or x.dtype is not dtype or x.ndim != 1:
                x = check_frame_(x, "x", isize, dtype)
            if out.ndim != 1:
                raise ValueError(f"out: expected shape ({osize},), got {out.shape} (reshaped in place)")
            rc = fn(address, x, out)
            if rc:
                raise _step_error(rc, x, out, isize, osize, vocab)
            return out

        step_into.buffers = step.buffers
        return step_into

    step.buffers = (ctx, buffers)  # alive as long as the step function
    step.bind = bind
    return step


def _waking(step, helper: Helper):
    """``step`` (and its ``bind``) that first wake the helper thread if it went to sleep on its
    Event (where it cannot park in the kernel)."""
    parked, wake = helper.parked, helper.wake

    def waking_step(x, out=None):
        if parked[0]:
            wake.set()
        return step(x, out)

    def bind(out: np.ndarray):
        step_into = step.bind(out)

        def waking_into(x):
            if parked[0]:
                wake.set()
            return step_into(x)

        waking_into.buffers = step.buffers
        return waking_into

    waking_step.buffers = step.buffers
    waking_step.bind = bind
    return waking_step


def _splitting(step, split):
    """``step`` (and its ``bind``) returning the tuple of a model's named outputs."""

    def split_step(x, out=None):
        return split(step(x, out))

    def bind(out: np.ndarray):
        step_into = step.bind(out)

        def split_into(x):
            return split(step_into(x))

        split_into.buffers = step.buffers
        return split_into

    split_step.buffers = step.buffers
    split_step.bind = bind
    return split_step


class Session:
    """One stream: its state lives here and advances with every ``step`` / ``run``."""

    def __init__(self, model: Model, *, threads: int = 1):
        p = model._plan
        if threads not in (1, 2):
            raise ValueError(f"threads: expected 1 or 2, got {threads!r}")
        self._model = model
        self._plan = p
        self._state = p.initial_state.copy()
        self._work = np.zeros(p.work_size(1), dtype=p.dtype)
        self._chunk_work = self._work
        self._helper = None
        if not p.streamable:
            return
        mailbox = np.zeros(0, np.int64)
        if threads == 2:
            self._helper = Helper(p.dtype, p.kinds)
            mailbox = self._helper.mailbox
        step = _prebound_step(model._step_kernel(threads == 2), (p.weights, p.table, self._state, self._work, mailbox),
                              p.dtype, p.input_size, p.output_size, model.vocabulary)
        if self._helper is not None and not PARKS_IN_KERNEL:
            step = _waking(step, self._helper)
        if model._split is not None:
            step = _splitting(step, model._split)
        step.__doc__ = Session.step.__doc__
        self.step = step  # shadows the method below: the same contract, fewer lookups

    def __repr__(self) -> str:
        p = self._plan
        return f"<streamlstm.Session {p.input_size}->{p.output_size} {p.dtype.name} threads={self.threads}>"

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __getstate__(self) -> dict:
        return {"model": self._model, "state": self._state.copy(), "threads": 2 if self._helper else 1}

    def __setstate__(self, st: dict) -> None:
        self.__init__(st["model"], threads=st["threads"])
        self._state[:] = st["state"]

    def __deepcopy__(self, memo) -> "Session":
        return self.fork()

    def fork(self) -> "Session":
        """A new, independent stream of the same model starting from this stream's state."""
        twin = Session(self._model, threads=2 if self._helper is not None else 1)
        twin._state[:] = self._state
        return twin

    def save_state(self) -> bytes:
        """This stream's state as versioned bytes carrying the model's fingerprint."""
        return state_format.encode(self._model.fingerprint, self._state[None])

    def load_state(self, data: bytes) -> None:
        """Restore bytes from ``save_state`` of this model (a Session or a pool stream).

        Raises ValueError, changing nothing, on another model's state, another dtype, another
        layout version or a damaged record."""
        p = self._plan
        st = state_format.decode(data, self._model.fingerprint, p.dtype, p.state_size, count=1)
        self._state[:] = st[0]

    @property
    def threads(self) -> int:
        """2 while the helper thread of a ``threads=2`` session runs, else 1."""
        return 2 if self._helper is not None and self._helper.running else 1

    def close(self) -> None:
        """Stop the helper thread of a ``threads=2`` session (steps then use one thread)."""
        if self._helper is not None:
            self._helper.close()

    @property
    def model(self) -> Model:
        return self._model

    def _require_streamable(self, verb: str):
        if not self._plan.streamable:
            raise ValueError(
                f"Session.{verb}: this model has {NEEDS_FUTURE}, so it cannot advance frame by frame. "
                "Use Model.run(X) on whole sequences.")

    def step(self, x, out: np.ndarray | None = None) -> np.ndarray:
        """Advance one frame (I,) -> (O,). Writes into ``out`` when given.

        Raises ValueError/TypeError naming the argument on a bad frame or ``out``; the state is
        then unchanged. (Streamable sessions replace this method by a prebound closure.)
        """
        self._require_streamable("step")

    def run(self, X, out: np.ndarray | None = None) -> np.ndarray:
        """Advance T frames (T, I) -> (T, O) in one native call, continuing this stream.

        Writes into ``out`` (a writeable C-contiguous (T, O) array of the model's dtype) when given."""
        self._require_streamable("run")
        p = self._plan
        X = self._model._sequence(X)
        if out is not None:
            out = check_sequence_out(out, X.shape[0], p.output_size, p.dtype)
        need = p.work_size(X.shape[0])
        if self._chunk_work.size < need:
            self._chunk_work = np.zeros(need, dtype=p.dtype)
        Y = _run_chunk(self._model, self._state, X, self._chunk_work, out, self._helper)
        return Y if self._model._split is None else self._model._split(Y)

    def stepper(self, out: np.ndarray | None = None) -> Callable[[np.ndarray], np.ndarray]:
        """A one-argument function ``f(x)`` that steps this stream and returns ``out``.

        ``out`` (allocated when None) is validated once, here, rather than on every call:
        the cheapest way to step from Python (the bench's streamlstm peer uses it). The function
        binds ``out``: keep it writeable and of its shape for as long as you call ``f``."""
        self._require_streamable("stepper")
        return self.step.bind(np.empty(self._plan.output_size, self._plan.dtype) if out is None else out)

    def buffers(self) -> tuple[np.ndarray, np.ndarray]:
        """The live (state, work) arrays this session steps, for ``Model.kernel().step`` in @njit code.

        Writing through them changes this session; ``work`` holds ``work_size(1)`` elements.
        """
        return self._state, self._work

    def reset(self) -> None:
        """Return to the initial (zero or learned) state."""
        self._state[:] = self._plan.initial_state

    def get_state(self) -> np.ndarray:
        """A flat copy of the raw state. Unchecked: ``set_state`` accepts any array of the right
        size; ``save_state`` / ``load_state`` carry and check the model's identity."""
        return self._state.copy()

    def set_state(self, state) -> None:
        """Restore a state from ``get_state`` (same model); validated before anything changes."""
        self._state[:] = check_state(state, self._state.shape[0], self._plan.dtype)
