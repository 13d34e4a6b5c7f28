"""SessionPool: many streams of one Model, their states in one slab, advanced together.

``pool.step(ids, X)`` advances n distinct open streams by one frame each in a single native
call (``kernels/streams.py``), batching the n frames into matrix-matrix products. Ids are opaque
ints: ``id = generation * capacity + slot``, so a closed id stays invalid after its slot is
reused by a later ``open``.
"""

from __future__ import annotations

import threading
import weakref
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .frames import NEEDS_FUTURE, bad_frame, check_sequence, check_sequence_out, check_state
from .kernels import layout as L
from .kernels import streams as K
from .kernels.config import entry_point
from .kernels.kindset import entry_for
from . import state as state_format

_INT_KINDS = "iu"
_BOOL_TYPES = frozenset((bool, np.bool_))  # a bool in a list of ids becomes an int in the array
_I64 = np.dtype(np.int64)
_MIN_ROWS_PER_THREAD = 32  # below this, handing rows to another thread costs more than it saves
_MIN_SPLIT_PRODUCTS = 10_000_000  # multiply-adds in a step below which waking a worker costs more than it saves
_MAX_SPLIT_ROWS = 4096  # from here the work outside the products alone pays for the split


def threaded_rows(plan) -> int:
    """The fewest streams in a step that a pool with ``threads`` > 1 splits over its threads."""
    rows = -(-_MIN_SPLIT_PRODUCTS // max(1, plan.products_per_frame))
    return min(max(2 * _MIN_ROWS_PER_THREAD, rows), _MAX_SPLIT_ROWS)


class SessionPool:
    """Up to ``capacity`` streams of one model; methods are thread-safe (one lock per pool).

    ``threads`` > 1 splits large steps (``threaded_rows``: at least 64 streams and 10M
    multiply-adds, or 4096 streams) over that many threads (the caller's and ``threads - 1``
    workers); results are identical to ``threads=1``.
    """

    def __init__(self, model, capacity: int, *, threads: int = 1):
        p = model.plan
        if not model.streamable:
            raise ValueError(f"SessionPool: this model has {NEEDS_FUTURE}, so it cannot advance frame by "
                             "frame. Use Model.run(X) on whole sequences.")
        if isinstance(capacity, bool) or not isinstance(capacity, (int, np.integer)) or capacity < 1:
            raise ValueError(f"capacity: expected a positive int, got {capacity!r}")
        if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1:
            raise ValueError(f"threads: expected a positive int, got {threads!r}")
        cap = int(capacity)
        self._threads = int(threads)
        self._split_rows = threaded_rows(p)
        split = model._split
        if split is not None:  # several named outputs: a tuple of (n, width) views per step
            flat = self.step
            self.step = lambda ids, X, out=None: split(flat(ids, X, out))
        self._model = model
        self._plan = p
        self._cap = cap
        self._dtype = p.dtype
        self._isize, self._osize = p.input_size, p.output_size
        self._slab = np.empty((cap, p.state_size), dtype=p.dtype)
        self._slab[:] = p.initial_state
        self._flat = self._slab.reshape(-1)
        self._live = np.full(cap, -1, dtype=np.int64)
        self._gen = [0] * cap
        self._free = list(range(cap - 1, -1, -1))  # pop() hands out the lowest free slot first
        self._iwork = np.zeros(2 * cap, dtype=np.int64)
        nb = K.block_rows(cap, p.weight_bytes)
        self._w, self._t = p.weights, p.table
        self._kinds = p.kinds
        self._work = [np.zeros(p.work_size(nb), dtype=p.dtype) for _ in range(self._threads)]
        self._hbuf = [np.zeros(nb * int(p.table[0, L.HDR_WMAX]), dtype=p.dtype) for _ in range(self._threads)]
        self._err = np.zeros(2, dtype=np.int64)
        self._lock = threading.Lock()
        self._fn = self._validate_fn = self._compute_fn = None
        self._executor = None
        if self._threads > 1:
            self._executor = ThreadPoolExecutor(self._threads - 1, thread_name_prefix="streamlstm-pool")
            weakref.finalize(self, self._executor.shutdown, wait=False)

    # ------------------------------------------------------------------ description
    @property
    def model(self):
        """The Model the streams run."""
        return self._model

    @property
    def capacity(self) -> int:
        return self._cap

    @property
    def threads(self) -> int:
        return self._threads

    def __len__(self) -> int:
        """Number of open streams."""
        return self._cap - len(self._free)

    def ids(self) -> list[int]:
        """The open ids, in slot order."""
        return [int(i) for i in self._live if i >= 0]

    def __repr__(self) -> str:
        return f"<streamlstm.SessionPool {len(self)}/{self._cap} open, {self._model!r}>"

    # ------------------------------------------------------------------ lifecycle
    def open(self) -> int:
        """Open a stream at the initial (zero or learned) state; returns its id."""
        with self._lock:
            if not self._free:
                raise ValueError(f"SessionPool.open: the pool is full ({self._cap} streams open); "
                                 "close a stream or create a larger pool")
            slot = self._free.pop()
            gen = self._gen[slot]
            self._gen[slot] = gen + 1
            sid = gen * self._cap + slot
            self._slab[slot] = self._plan.initial_state
            self._live[slot] = sid
            return sid

    def close(self, sid: int) -> None:
        """Close stream ``sid``; its slot is reused by a later ``open``, the id never again."""
        with self._lock:
            slot = self._slot(sid, "close")
            self._live[slot] = -1
            self._free.append(slot)

    def reset(self, sid: int) -> None:
        """Return stream ``sid`` to the initial state."""
        with self._lock:
            self._slab[self._slot(sid, "reset")] = self._plan.initial_state

    def get_state(self, sid: int) -> np.ndarray:
        """A flat copy of stream ``sid``'s state (same layout as ``Session.get_state``)."""
        with self._lock:
            return self._slab[self._slot(sid, "get_state")].copy()

    def set_state(self, sid: int, state) -> None:
        """Restore a state from ``get_state`` of a pool stream or a Session of the same model."""
        st = check_state(state, self._slab.shape[1], self._dtype)
        with self._lock:
            self._slab[self._slot(sid, "set_state")] = st

    def save_state(self, sid: int) -> bytes:
        """Stream ``sid``'s state as versioned bytes (the format of ``Session.save_state``)."""
        return self.save_states([sid])

    def load_state(self, sid: int, data: bytes) -> None:
        """Restore bytes from ``save_state`` of this model (a pool stream or a Session)."""
        self.load_states([sid], data)

    def save_states(self, ids) -> bytes:
        """The states of the open streams ``ids`` as one versioned record."""
        with self._lock:
            slots = [self._slot(sid, "save_states") for sid in self._id_list(ids, "save_states")]
            return state_format.encode(self._model.fingerprint, self._slab[slots])

    def load_states(self, ids, data: bytes | list) -> None:
        """Restore into the open streams ``ids`` (same order) one record from ``save_states``, or a
        list of records from ``save_state``, one per id.

        All or nothing: any unknown id or mismatch raises ValueError before a state changes."""
        ids = self._id_list(ids, "load_states")
        p = self._plan
        if isinstance(data, (list, tuple)):
            if len(data) != len(ids):
                raise ValueError(f"state: {len(data)} records for {len(ids)} stream ids")
            parts = [state_format.decode(d, self._model.fingerprint, p.dtype, p.state_size, count=1)
                     for d in data]
            states = np.concatenate(parts) if parts else np.zeros((0, p.state_size), p.dtype)
        else:
            states = state_format.decode(data, self._model.fingerprint, p.dtype, p.state_size, count=len(ids))
        with self._lock:
            slots = [self._slot(sid, "load_states") for sid in ids]
            if len(set(slots)) != len(slots):
                raise ValueError("ids: a stream id appears twice")
            self._slab[slots] = states

    def _id_list(self, ids, verb: str) -> list:
        if isinstance(ids, (str, bytes)) or not hasattr(ids, "__len__"):
            raise ValueError(f"SessionPool.{verb}: expected a sequence of stream ids, got {type(ids).__name__}")
        return list(ids)

    def __enter__(self) -> "SessionPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close_all()

    def close_all(self) -> None:
        """Close every stream and stop the worker threads (the pool stays usable: ``open`` again)."""
        with self._lock:
            for slot, sid in enumerate(self._live):
                if sid >= 0:
                    self._live[slot] = -1
                    self._free.append(slot)
            self._free.sort(reverse=True)
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = ThreadPoolExecutor(self._threads - 1, thread_name_prefix="streamlstm-pool")

    def __getstate__(self) -> dict:
        with self._lock:
            return {"model": self._model, "capacity": self._cap, "threads": self._threads,
                    "slab": self._slab.copy(), "live": self._live.copy(), "gen": list(self._gen),
                    "free": list(self._free)}

    def __setstate__(self, st: dict) -> None:
        self.__init__(st["model"], st["capacity"], threads=st["threads"])
        self._slab[:] = st["slab"]
        self._live[:] = st["live"]
        self._gen = list(st["gen"])
        self._free = list(st["free"])

    def _slot(self, sid, verb: str) -> int:
        if isinstance(sid, bool) or not isinstance(sid, (int, np.integer)):
            raise ValueError(f"SessionPool.{verb}: expected an int stream id, got {type(sid).__name__}")
        sid = int(sid)
        slot = sid % self._cap if sid >= 0 else 0
        if sid < 0 or self._live[slot] != sid:
            raise ValueError(f"SessionPool.{verb}: {self._describe(sid)}")
        return slot

    def _describe(self, sid: int) -> str:
        if sid >= 0 and sid // self._cap < self._gen[sid % self._cap]:
            return f"stream id {sid} is closed"
        return f"stream id {sid} was never opened in this pool"

    # ------------------------------------------------------------------ stepping
    def step(self, ids, X, out: np.ndarray | None = None) -> np.ndarray:
        """Advance the n distinct open streams ``ids`` by one frame each: X (n, I) -> (n, O).

        Row k of X is the next frame of stream ``ids[k]``; row k of the result its output. One
        native call (with ``threads`` > 1 and many streams: one validating call, then the rows
        split over threads); on any error (unknown/closed/duplicate id, bad shape, NaN/Inf) no
        state changes.
        """
        if ids.__class__ is not np.ndarray or ids.dtype is not _I64 or ids.ndim != 1:
            ids = self._check_ids(ids)
        n = ids.shape[0]
        if (X.__class__ is not np.ndarray or X.dtype is not self._dtype or X.shape != (n, self._isize)
                or not X.flags.c_contiguous or not X.flags.writeable):
            X = self._check_frames(X, n)
        if out is None:
            out = np.empty((n, self._osize), self._dtype)
        elif (out.__class__ is not np.ndarray or out.dtype is not self._dtype
              or out.shape != (n, self._osize) or not out.flags.c_contiguous or not out.flags.writeable):
            out = check_sequence_out(out, n, self._osize, self._dtype)
        if n == 0:
            return out
        if not ids.flags.c_contiguous:
            ids = np.ascontiguousarray(ids)
        with self._lock:
            if self._threads > 1 and n >= self._split_rows:
                self._step_threaded(ids, X, out)
                return out
            args = (self._w, self._t, self._flat, self._live, self._iwork, ids, self._work[0],
                    self._hbuf[0], X, out, self._err)
            fn = self._fn
            if fn is None:
                fn = self._fn = entry_point(entry_for(K.pool_advance, self._kinds), args)
            if fn(*args):
                self._raise(ids, X)
        return out

    def _step_threaded(self, ids: np.ndarray, X: np.ndarray, out: np.ndarray) -> None:
        args = (self._live, self._iwork, ids, X, int(self._t[0, L.HDR_VOCAB]), self._err)
        if self._validate_fn is None:
            self._validate_fn = entry_point(K.pool_validate, args)
        if self._validate_fn(*args):
            self._raise(ids, X)
        n = ids.shape[0]
        parts = min(self._threads, n // _MIN_ROWS_PER_THREAD)
        bounds = [n * i // parts for i in range(parts + 1)]
        slots = self._iwork[self._cap:self._cap + n]
        calls = [(self._w, self._t, self._flat, slots[a:b], self._work[i], self._hbuf[i], X[a:b], out[a:b])
                 for i, (a, b) in enumerate(zip(bounds, bounds[1:]))]
        if self._compute_fn is None:
            self._compute_fn = entry_point(entry_for(K.pool_compute, self._kinds), calls[0])
        fn = self._compute_fn
        futures = [self._executor.submit(fn, *c) for c in calls[1:]]
        fn(*calls[0])
        for f in futures:
            f.result()

    def _check_frames(self, X, n: int) -> np.ndarray:
        if self._t[0, L.HDR_VOCAB] and np.ndim(X) == 1:
            X = np.asarray(X).reshape(-1, 1)  # token ids, one per stream
        X = check_sequence(X, "X", self._isize, self._dtype)
        if X.shape[0] != n:
            raise ValueError(f"X: expected one frame per id ({n} ids), got {X.shape[0]} frames")
        return X if X.flags.writeable else X.copy()

    def _check_ids(self, ids) -> np.ndarray:
        try:
            arr = np.asarray(ids)
        except Exception as e:
            raise ValueError(f"ids: cannot convert {type(ids).__name__} to an array ({e})") from None
        if arr.ndim != 1:
            raise ValueError(f"ids: expected a 1-D sequence of stream ids, got shape {arr.shape}")
        if arr.size == 0:
            return np.zeros(0, np.int64)
        if arr.dtype.kind not in _INT_KINDS or (isinstance(ids, (list, tuple))
                                                 and not _BOOL_TYPES.isdisjoint(map(type, ids))):
            raise ValueError(f"ids: expected integer stream ids, got dtype {arr.dtype}")
        if arr.dtype.kind == "u" and arr.dtype.itemsize == 8 and arr.max() > np.iinfo(np.int64).max:
            raise ValueError("ids: id out of range")
        return np.ascontiguousarray(arr, dtype=np.int64)

    def _raise(self, ids: np.ndarray, X: np.ndarray):
        kind, i = int(self._err[0]), int(self._err[1])
        sid = int(ids[i])
        if kind == K.ERR_ID:
            raise ValueError(f"ids[{i}]: {self._describe(sid)}; no stream was advanced")
        if kind == K.ERR_DUPLICATE:
            raise ValueError(f"ids[{i}]: stream id {sid} appears twice in one step; no stream was advanced")
        raise ValueError(f"X: frame {i} (stream id {sid}) {bad_frame(X[i], int(self._t[0, L.HDR_VOCAB]))}; "
                         "no stream was advanced")
