"""StreamCluster: streams of one model sharded over Ray actors, with failover that loses no frame.

Optional extra ``streamlstm[ray]``; the core package never imports this module.

    from streamlstm.cluster import StreamCluster
    c = StreamCluster("kws.onnx", shards=4, capacity=1024, snapshot_every=32)
    c.open("call-17"); Y = c.step(["call-17"], X)

Each shard is a Ray actor holding a Model and a SessionPool (``cluster_shard.Shard``). Keys go
to shards by rendezvous hashing. The driver (this object) owns, per shard, the latest snapshot
of its streams and the log of every operation since (at most ``snapshot_every`` steps). When a
shard dies, the driver starts a replacement, restores the snapshot, replays the log and retries
the step, so every output is bit-identical to one uninterrupted SessionPool fed the same frames.
If recovery fails ``max_recoveries`` times in one call, ``ShardLostError`` is raised and that
call returns no output (the streams keep their pre-call state on the driver's side).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any, Iterable

import numpy as np

try:
    import ray
    from ray.exceptions import (ActorUnschedulableError, GetTimeoutError, ObjectLostError, RayActorError,
                                RayTaskError)
except ImportError as e:  # pragma: no cover - exercised only without ray
    raise ImportError('streamlstm.cluster needs Ray: pip install "streamlstm[ray]"') from e

from .cluster_routing import normal_key, owner
from .cluster_shard import Shard
from .model import check_sequence

log = logging.getLogger("streamlstm.cluster")

_SHARD_DOWN = (RayActorError, ObjectLostError, GetTimeoutError, ActorUnschedulableError)

__all__ = ["StreamCluster", "ShardLostError"]


class ShardLostError(RuntimeError):
    """A shard died and could not be rebuilt; the call that raised it returned no output."""


class _ShardRecord:
    """What the driver keeps for one shard: its actor, key -> pool id, snapshot and replay log."""

    def __init__(self, number: int, actor):
        self.number = number
        self.actor = actor
        self.sids: dict[Any, int] = {}
        self.snap: dict[Any, bytes] = {}  # key -> state bytes, for the keys open at the snapshot
        self.log: list[tuple] = []  # operations since the snapshot, by key
        self.steps = 0  # steps in the log

    def key_of(self) -> dict[int, Any]:
        return {sid: key for key, sid in self.sids.items()}

    def replay_plan(self) -> tuple[list[bytes], list[tuple], dict]:
        """What ``Shard.rebuild`` needs: the snapshot's blobs, the log with streams numbered
        instead of keyed, and key -> number for the streams the log leaves open."""
        keys = list(self.snap)
        number = {k: i for i, k in enumerate(keys)}
        events, fresh = [], len(keys)
        for ev in self.log:
            if ev[0] == "step":
                events.append(("step", [number[k] for k in ev[1]], ev[2]))
                continue
            if ev[0] in ("open", "load"):  # a new stream, even for a key closed and reopened
                number[ev[1]], fresh = fresh, fresh + 1
            events.append((ev[0], number[ev[1]], *ev[2:]))
        return [self.snap[k] for k in keys], events, number

    def take_snapshot(self, ids: list[int], blobs: list[bytes]) -> None:
        key_of = self.key_of()
        self.snap = {key_of[sid]: blob for sid, blob in zip(ids, blobs) if sid in key_of}
        self.log, self.steps = [], 0


class StreamCluster:
    """Streams of one model, by key (str or int), on ``shards`` Ray actors of ``capacity`` each.

    ``source`` is a model path or the file's bytes; each shard loads it (``load_options`` go to
    ``streamlstm.load``). Each shard's states are snapshotted into the driver every
    ``snapshot_every`` of its steps. ``idle_timeout`` (seconds, None = never) closes streams
    not used for that long, with a log record. A shard that takes longer than ``step_timeout``
    seconds (None = no limit) to answer a call is treated as dead; a replacement that is not
    rebuilt within ``recovery_timeout`` seconds (no node can host it) counts as a failed
    attempt, and after ``max_recoveries`` of them ``ShardLostError`` is raised.
    ``actor_options`` go to Ray's ``.options()`` (default ``num_cpus=1``). Ray must be
    initialised (``ray.init``) or a local instance is started. Methods are thread-safe; calls
    are serialised. ``recoveries`` counts the shards rebuilt so far.
    """

    def __init__(self, source, shards: int = 2, capacity: int = 1024, snapshot_every: int = 32, *,
                 idle_timeout: float | None = None, step_timeout: float | None = None,
                 recovery_timeout: float | None = 600.0, max_recoveries: int = 3, threads: int = 1,
                 actor_options: dict | None = None, **load_options):
        for name, v in (("shards", shards), ("capacity", capacity), ("snapshot_every", snapshot_every),
                        ("max_recoveries", max_recoveries), ("threads", threads)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{name}: expected a positive int, got {v!r}")
        for name, v in (("idle_timeout", idle_timeout), ("step_timeout", step_timeout),
                        ("recovery_timeout", recovery_timeout)):
            if v is not None and not (isinstance(v, (int, float)) and v > 0):
                raise ValueError(f"{name}: expected a positive number of seconds or None, got {v!r}")
        if not isinstance(source, (str, bytes, bytearray, memoryview)) and not hasattr(source, "__fspath__"):
            raise TypeError(f"source: expected a path or the model file's bytes, got {type(source).__name__}")
        if not ray.is_initialized():
            ray.init()
        self._source = bytes(source) if isinstance(source, (bytearray, memoryview)) else source
        self._capacity = int(capacity)
        self._every = int(snapshot_every)
        self._idle = idle_timeout
        self._timeout = step_timeout
        self._recovery_timeout = recovery_timeout
        self._max_recoveries = int(max_recoveries)
        self._threads = int(threads)
        self._load_options = dict(load_options)
        self._actor_options = {"num_cpus": 1, "max_restarts": 0, **(actor_options or {})}
        self._remote = ray.remote(Shard)
        self._lock = threading.RLock()
        self._owner: dict[Any, _ShardRecord] = {}
        self._last_used: dict[Any, float] = {}
        self._last_sweep = time.monotonic()
        self._topology = 0  # bumped whenever a stream opens, closes, moves or is rebuilt
        self._routing = None
        self.recoveries = 0
        self._info: dict | None = None
        self._records: list[_ShardRecord] = []
        try:
            self._records = self._start(range(int(shards)))
        except BaseException:
            self.shutdown()
            raise

    # ------------------------------------------------------------------ description
    @property
    def shards(self) -> list:
        """The shards' Ray actor handles, by shard number."""
        return [r.actor for r in self._records]

    @property
    def input_size(self) -> int:
        return self._info["input_size"]

    @property
    def output_size(self) -> int:
        return self._info["output_size"]

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self._info["dtype"])

    @property
    def capacity(self) -> int:
        """Streams per shard."""
        return self._capacity

    def keys(self) -> list:
        """The open keys."""
        return list(self._owner)

    def __len__(self) -> int:
        return len(self._owner)

    def __contains__(self, key) -> bool:
        return key in self._owner

    def shard_of(self, key) -> int:
        """The number of the shard holding open stream ``key``."""
        return self._record(key).number

    def __repr__(self) -> str:
        return f"<streamlstm.StreamCluster {len(self)} streams on {len(self._records)} shards>"

    def __enter__(self) -> "StreamCluster":
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()

    # ------------------------------------------------------------------ shards
    def _new_actor(self):
        return self._remote.options(**self._actor_options).remote(
            self._source, self._capacity, self._load_options, self._threads)

    def _start(self, numbers: Iterable[int]) -> list[_ShardRecord]:
        records = [_ShardRecord(n, self._new_actor()) for n in numbers]
        try:
            for info in ray.get([r.actor.describe.remote() for r in records]):
                self._check_info(info)
        except BaseException:
            for r in records:
                self._kill(r.actor)
            raise
        return records

    def _check_info(self, info: dict) -> None:
        if self._info is None:
            self._info = info
        elif info["digest"] != self._info["digest"]:
            raise ShardLostError("a shard loaded a different model from the same source (its file "
                                 "differs on that node); every shard must load the same model")

    def _kill(self, actor) -> None:
        try:
            ray.kill(actor, no_restart=True)
        except Exception:  # already gone
            pass

    def _recover(self, rec: _ShardRecord, cause: BaseException, *, reuse: bool = False) -> None:
        """Rebuild ``rec``'s streams from the snapshot and the replayed log.

        With ``reuse`` (a rollback: the actor is alive), the live actor is rebuilt in place
        first; otherwise, or if that fails, it is replaced by a new actor.
        """
        self._topology += 1
        blobs, events, number = rec.replay_plan()
        last: BaseException = cause
        if reuse:
            try:
                live = ray.get(rec.actor.rebuild.remote(blobs, events))
            except _SHARD_DOWN as e:
                last = e
            else:
                rec.sids = {k: live[i] for k, i in number.items() if i in live}
                return
        self._kill(rec.actor)
        for attempt in range(self._max_recoveries):
            actor = self._new_actor()
            try:
                self._check_info(ray.get(actor.describe.remote(), timeout=self._recovery_timeout))
                live = ray.get(actor.rebuild.remote(blobs, events), timeout=self._recovery_timeout)
            except _SHARD_DOWN as e:
                self._kill(actor)
                last = e
                continue
            except BaseException:
                self._kill(actor)
                raise
            rec.actor = actor
            rec.sids = {k: live[i] for k, i in number.items() if i in live}
            self.recoveries += 1
            log.warning("shard %d rebuilt (%d streams, %d logged operations replayed) after: %s",
                        rec.number, len(live), len(events), type(cause).__name__)
            return
        raise ShardLostError(f"shard {rec.number} died and could not be rebuilt after "
                             f"{self._max_recoveries} attempts (last error: {last!r}); no output was "
                             "returned by this call") from last

    def _call(self, rec: _ShardRecord, method: str, *args):
        """``rec.actor.method(*args)``, rebuilding the shard and retrying if it is down."""
        for attempt in range(self._max_recoveries + 1):
            try:
                return ray.get(getattr(rec.actor, method).remote(*args), timeout=self._timeout)
            except RayTaskError as e:  # the shard refused the input: raise its own error
                if isinstance(e.cause, (ValueError, KeyError, TypeError)):
                    raise e.cause from None
                raise
            except _SHARD_DOWN as e:
                if attempt == self._max_recoveries:
                    raise ShardLostError(f"shard {rec.number} keeps failing: {e!r}") from e
                self._recover(rec, e)

    def _record(self, key) -> _ShardRecord:
        k = normal_key(key)
        rec = self._owner.get(k)
        if rec is None:
            raise KeyError(f"stream key {key!r} is not open")
        return rec

    def _touch(self, keys) -> None:
        if self._idle is None:
            return
        now = time.monotonic()
        for k in keys:
            self._last_used[k] = now

    # ------------------------------------------------------------------ lifecycle
    def open(self, key) -> None:
        """Open stream ``key`` (str or int) at the initial state; ValueError if it is open."""
        with self._lock:
            k = normal_key(key)
            self._sweep((k,))
            if k in self._owner:
                raise ValueError(f"stream key {key!r} is already open")
            rec = self._records[owner(k, len(self._records))]
            rec.sids[k] = self._call(rec, "open", 1)[0]
            self._topology += 1
            rec.log.append(("open", k))
            self._owner[k] = rec
            self._touch((k,))

    def close(self, key) -> None:
        """Close stream ``key``; KeyError if it is not open."""
        with self._lock:
            rec = self._record(key)
            k = normal_key(key)
            self._close(rec, k)

    def _close(self, rec: _ShardRecord, k) -> None:
        self._call(rec, "close", [rec.sids[k]])
        self._topology += 1
        del rec.sids[k]
        rec.log.append(("close", k))
        del self._owner[k]
        self._last_used.pop(k, None)

    def reset(self, key) -> None:
        """Return stream ``key`` to the initial state."""
        with self._lock:
            rec, k = self._record(key), normal_key(key)
            self._call(rec, "reset", rec.sids[k])
            rec.log.append(("reset", k))
            self._touch((k,))

    def get_state(self, key) -> np.ndarray:
        """A copy of stream ``key``'s state (raw flat array, same layout as ``SessionPool.get_state``)."""
        with self._lock:
            rec, k = self._record(key), normal_key(key)
            return np.array(self._call(rec, "get_state", rec.sids[k]))

    def set_state(self, key, state) -> None:
        """Set stream ``key``'s state from ``get_state`` (of this cluster, a pool or a session)."""
        with self._lock:
            rec, k = self._record(key), normal_key(key)
            try:
                st = np.array(state, copy=True)
            except Exception as e:
                raise ValueError(f"state: cannot convert {type(state).__name__} to an array ({e})") from None
            self._call(rec, "set_state", rec.sids[k], st)
            rec.log.append(("set", k, st))
            self._touch((k,))

    def shutdown(self) -> None:
        """Stop every shard; the cluster cannot be used afterwards."""
        with self._lock:
            for rec in self._records:
                self._kill(rec.actor)
            self._records, self._owner = [], {}

    # ------------------------------------------------------------------ stepping
    def step(self, keys, X) -> np.ndarray:
        """Advance the distinct open streams ``keys`` by one frame each: X (n, I) -> (n, O).

        Row k of X is the next frame of ``keys[k]``; row k of the result its output. One pool
        step per shard involved, all shards in parallel. Bad input (shape, NaN/Inf, duplicate
        key: ValueError; unknown key: KeyError) changes no stream on any shard.
        """
        with self._lock:
            keys, groups = self._prepare(keys, X)
            refs = {rec: rec.actor.step.remote(sids, Xg, rec.steps + 1 >= self._every)
                    for rec, (rows, group_keys, sids, Xg) in groups.items()}
            return self._collect(keys, groups, refs)

    async def step_async(self, keys, X) -> np.ndarray:
        """``step`` for event-loop pipelines: awaits the shards without blocking the loop."""
        return await asyncio.to_thread(self.step, keys, X)

    def _route(self, keys) -> tuple[list, list]:
        """The normalised keys and their grouping by shard: [(rec, rows, keys of rows, pool ids)].

        Validates the keys (types, duplicates, open). The result is reused while the same keys
        come back and no stream was opened, closed, moved or rebuilt since.
        """
        cached = self._routing
        if (cached is not None and cached[0] == self._topology and cached[1] == keys
                and set(map(type, keys)) <= {str, int}):
            return cached[1], cached[2]
        keys = [normal_key(k) for k in keys]
        if len(set(keys)) != len(keys):
            seen = set()
            dup = next(k for k in keys if k in seen or seen.add(k))
            raise ValueError(f"keys: stream key {dup!r} appears twice in one step; no stream was advanced")
        missing = [k for k in keys if k not in self._owner]
        if missing:
            raise KeyError(f"stream key {missing[0]!r} is not open; no stream was advanced")
        rows_of: dict[_ShardRecord, list[int]] = {}
        for i, k in enumerate(keys):
            rows_of.setdefault(self._owner[k], []).append(i)
        groups = []
        for rec, rows in rows_of.items():
            group_keys = [keys[i] for i in rows]
            sids = np.array([rec.sids[k] for k in group_keys], np.int64)
            groups.append((rec, np.array(rows, np.intp), group_keys, sids))
        self._routing = (self._topology, keys, groups)
        return keys, groups

    def _prepare(self, keys, X):
        keys, groups = self._route(keys if keys.__class__ is list else list(keys))
        n = len(keys)
        X = check_sequence(X, "X", self.input_size, self.dtype)
        if X.shape[0] != n:
            raise ValueError(f"X: expected one frame per key ({n} keys), got {X.shape[0]} frames")
        bad = np.flatnonzero(~np.isfinite(X).all(axis=1))
        if bad.size:
            raise ValueError(f"X: frame {bad[0]} (stream key {keys[bad[0]]!r}) contains NaN or Inf; "
                             "no stream was advanced")
        self._sweep(keys)
        return keys, {rec: (rows, group_keys, sids, X[rows]) for rec, rows, group_keys, sids in groups}

    def _collect(self, keys: list, groups: dict, refs: dict) -> np.ndarray:
        out = np.empty((len(keys), self.output_size), self.dtype)
        done, unsure, failed = [], [], None
        for rec, ref in refs.items():
            rows, group_keys, sids, Xg = groups[rec]
            try:
                Y, snap = self._get_step(rec, ref, group_keys, Xg)
            except (ValueError, ShardLostError) as e:  # refused (state unchanged) or lost
                failed = failed or e
                continue
            except Exception as e:  # an unexpected error inside the shard: its state is unknown
                failed = failed or e
                unsure.append(rec)
                continue
            done.append((rec, rows, group_keys, Xg, Y, snap))
        if failed is not None:  # no output: every shard goes back to its state before the call
            for rec in [d[0] for d in done] + unsure:
                self._recover(rec, failed, reuse=True)
            raise failed
        for rec, rows, group_keys, Xg, Y, snap in done:
            out[rows] = Y
            if snap is not None:
                rec.take_snapshot(*snap)
            else:
                rec.log.append(("step", group_keys, Xg))
                rec.steps += 1
        self._touch(keys)
        return out

    def _get_step(self, rec: _ShardRecord, ref, keys: list, Xg: np.ndarray):
        for attempt in range(self._max_recoveries + 1):
            try:
                return ray.get(ref, timeout=self._timeout)
            except RayTaskError as e:
                if isinstance(e.cause, ValueError):
                    raise e.cause from None
                raise
            except _SHARD_DOWN as e:
                if attempt == self._max_recoveries:
                    raise ShardLostError(f"shard {rec.number} keeps failing: {e!r}") from e
                self._recover(rec, e)
                sids = np.array([rec.sids[k] for k in keys], np.int64)
                ref = rec.actor.step.remote(sids, Xg, rec.steps + 1 >= self._every)

    def snapshot(self) -> None:
        """Snapshot every shard now (the driver then holds every stream's state; logs are emptied)."""
        with self._lock:
            refs = {rec: rec.actor.snapshot.remote() for rec in self._records}
            for rec, ref in refs.items():
                try:
                    rec.take_snapshot(*ray.get(ref))
                except _SHARD_DOWN as e:
                    self._recover(rec, e)
                    rec.take_snapshot(*self._call(rec, "snapshot"))

    # ------------------------------------------------------------------ idle reclaim
    def reclaim_idle(self, keep: Iterable = ()) -> list:
        """Close the streams unused for longer than ``idle_timeout`` (except ``keep``); returns their keys."""
        with self._lock:
            if self._idle is None:
                return []
            now = time.monotonic()
            self._last_sweep = now
            keep = set(keep)
            stale = [k for k, t in self._last_used.items() if now - t > self._idle and k not in keep]
            for k in stale:
                log.info("closing stream %r: idle for %.3f s (idle_timeout=%s s)",
                         k, now - self._last_used[k], self._idle)
                self._close(self._owner[k], k)
            return stale

    def _sweep(self, keep) -> None:
        if self._idle is not None and time.monotonic() - self._last_sweep > self._idle / 2:
            self.reclaim_idle(set(keep))

    # ------------------------------------------------------------------ elasticity
    def resize(self, shards: int) -> None:
        """Change the number of shards; about 1/N of the streams move, states intact."""
        if isinstance(shards, bool) or not isinstance(shards, (int, np.integer)) or shards < 1:
            raise ValueError(f"shards: expected a positive int, got {shards!r}")
        with self._lock:
            shards = int(shards)
            old = len(self._records)
            moves = {}
            counts = [0] * shards
            for k, rec in self._owner.items():
                new = owner(k, shards)
                counts[new] += 1
                if new != rec.number:
                    moves[k] = new
            if max(counts, default=0) > self._capacity:
                raise ValueError(f"resize({shards}): a shard would hold {max(counts)} streams, more than "
                                 f"its capacity {self._capacity}; nothing moved")
            self.snapshot()
            self._topology += 1
            records = self._records + (self._start(range(old, shards)) if shards > old else [])
            by_target: dict[int, list] = {}
            for k, n in moves.items():
                by_target.setdefault(n, []).append(k)
            for n, ks in by_target.items():
                target = records[n]
                blobs = [self._owner[k].snap[k] for k in ks]
                sids = self._call(target, "load", blobs)
                for k, sid, blob in zip(ks, sids, blobs):
                    target.sids[k] = sid
                    target.log.append(("load", k, blob))
            for k, n in moves.items():
                src = self._owner[k]
                self._call(src, "close", [src.sids[k]])
                del src.sids[k]
                src.log.append(("close", k))
                self._owner[k] = records[n]
            for rec in records[shards:]:
                self._kill(rec.actor)
            self._records = records[:shards]
            log.info("resized from %d to %d shards, %d streams moved", old, shards, len(moves))
