"""One shard of a StreamCluster: a Model and a SessionPool, run inside a Ray actor.

The class is plain Python (``cluster.py`` wraps it with ``ray.remote``), so it imports no Ray.
The shard loads the model itself from the source (a path or the file's bytes) and knows
streams only by pool id; the driver keeps the key -> id map, the snapshots and the replay log.
All state snapshots and restores go through ``_snapshot`` and ``_restore``.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from .loading import load
from .pool import SessionPool

_SUFFIX = {"native": ".npz", "onnx": ".onnx", "torch": ".pt", "keras": ".keras"}


def source_bytes(source) -> bytes:
    """The bytes of a model source: a path (str or Path) is read, bytes-like is taken as is."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source)
    if isinstance(source, (str, Path)):
        return Path(source).read_bytes()
    raise TypeError(f"source: expected a path or the model file's bytes, got {type(source).__name__}")


def model_digest(data: bytes, options: dict) -> bytes:
    """sha256 of the model file and the load options: two shards agree iff they run one model."""
    h = hashlib.sha256(data)
    h.update(repr(sorted(options.items())).encode())
    return h.digest()


def _sniff_format(data: bytes) -> str:
    if data[:4] == b"PK\x03\x04":
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            names = z.namelist()
        if "__config__.npy" in names:
            return "native"
        if "config.json" in names:
            return "keras"
        raise ValueError("source: these bytes are a zip archive that is not a streamlstm .npz or a "
                         ".keras file; pass format= (e.g. format='torch')")
    if data[:4] == b"\x89HDF":
        return "keras"
    return "onnx"


def load_source(source, options: dict):
    """Load the Model from a path or from a model file's bytes (format sniffed or ``format=``)."""
    if isinstance(source, (str, Path)):
        return load(source, **options)
    data = source_bytes(source)
    options = dict(options)
    fmt = options.pop("format", None) or _sniff_format(data)
    suffix = ".h5" if data[:4] == b"\x89HDF" else _SUFFIX.get(fmt, "")
    with tempfile.TemporaryDirectory(prefix="streamlstm-shard-") as d:
        path = os.path.join(d, "model" + suffix)
        with open(path, "wb") as f:
            f.write(data)
        return load(path, format=fmt, **options)


def _snapshot(pool: SessionPool, sids) -> list[bytes]:
    """The states of streams ``sids``, one versioned ``save_state`` record each (model
    fingerprint, dtype, layout version), so any shard of the same model can take any of them."""
    return [pool.save_state(int(s)) for s in sids]


def _restore(pool: SessionPool, sids, blobs) -> None:
    """Load ``_snapshot`` records into streams ``sids``; ValueError (nothing loaded) if any mismatches."""
    pool.load_states([int(s) for s in sids], list(blobs))


def _node_id() -> str | None:
    try:
        import ray
        return ray.get_runtime_context().get_node_id()
    except Exception:  # not inside Ray
        return None


class Shard:
    """A pool of streams for one model; the driver addresses streams by pool id."""

    def __init__(self, source, capacity: int, load_options: dict, threads: int = 1):
        self._digest = model_digest(source_bytes(source), load_options)
        self._model = load_source(source, load_options)
        self._pool = self._model.pool(capacity, threads=threads)
        self._warm()

    def _warm(self) -> None:
        """Compile the pool step now, so the first real step does not pay for it."""
        sid = self._pool.open()
        try:
            self._pool.step([sid], np.zeros((1, self._model.input_size), self._model.dtype))
            self._pool.set_state(sid, self._pool.get_state(sid))
        finally:
            self._pool.close(sid)

    def describe(self) -> dict:
        m = self._model
        return {"input_size": m.input_size, "output_size": m.output_size, "dtype": m.dtype.name,
                "state_size": m.state_size, "capacity": self._pool.capacity, "digest": self._digest,
                "pid": os.getpid(), "node": _node_id()}

    def open(self, n: int) -> list[int]:
        if n > self._pool.capacity - len(self._pool):
            raise ValueError(f"shard full: {len(self._pool)} of {self._pool.capacity} streams open")
        return [self._pool.open() for _ in range(n)]

    def close(self, sids) -> None:
        for s in sids:
            self._pool.close(int(s))

    def reset(self, sid: int) -> None:
        self._pool.reset(sid)

    def get_state(self, sid: int) -> np.ndarray:
        return self._pool.get_state(sid)

    def set_state(self, sid: int, state) -> None:
        self._pool.set_state(sid, state)

    def step(self, sids: np.ndarray, X: np.ndarray, snapshot: bool = False):
        """One pool step; with ``snapshot``, also every open stream's state after it: (Y, (ids, blobs))."""
        Y = self._pool.step(sids, X)
        return Y, (self.snapshot() if snapshot else None)

    def snapshot(self) -> tuple[list[int], list[bytes]]:
        ids = self._pool.ids()
        return ids, _snapshot(self._pool, ids)

    def load(self, blobs: list[bytes]) -> list[int]:
        """Open one stream per blob, restored from it; returns their ids (nothing opened on error)."""
        sids = self.open(len(blobs))
        try:
            _restore(self._pool, sids, blobs)
        except Exception:
            self.close(sids)
            raise
        return sids

    def rebuild(self, blobs: list[bytes], events: list[tuple]) -> dict[int, int]:
        """Close every stream, restore ``blobs`` as streams 0..len-1, then replay ``events``.

        Events name streams by those numbers: ("open", i), ("close", i), ("reset", i),
        ("set", i, state), ("load", i, blob), ("step", [i...], X). Returns {number: pool id}
        for the streams open at the end.
        """
        for sid in self._pool.ids():
            self._pool.close(sid)
        live = dict(enumerate(self.load(blobs)))
        for ev in events:
            kind = ev[0]
            if kind == "open":
                live[ev[1]] = self._pool.open()
            elif kind == "close":
                self._pool.close(live.pop(ev[1]))
            elif kind == "reset":
                self._pool.reset(live[ev[1]])
            elif kind == "set":
                self._pool.set_state(live[ev[1]], ev[2])
            elif kind == "load":
                live[ev[1]] = self.load([ev[2]])[0]
            elif kind == "step":
                self._pool.step(np.array([live[i] for i in ev[1]], np.int64), ev[2])
            else:
                raise ValueError(f"rebuild: unknown event {kind!r}")
        return live
