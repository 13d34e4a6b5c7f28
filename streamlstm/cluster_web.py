"""A WebSocket front for a StreamCluster: one connection is one stream (``streamlstm serve``).

Protocol, per connection:
- on connect the server sends one text message, JSON ``{"stream", "input_size", "output_size",
  "dtype"}``;
- each binary message is one frame, ``input_size`` little-endian values of ``dtype``; the reply
  is one binary message of ``output_size`` values;
- the text message ``reset`` returns the stream to its initial state (reply ``{"reset": true}``);
- a bad frame (wrong length, NaN/Inf) gets the text reply ``{"error": ...}`` and changes
  nothing; the connection stays open. If the stream was closed (idle timeout) or cannot be
  served, the server sends ``{"error": ...}`` and closes the connection.
The frames of all connections that arrive while a cluster step runs go into the next step, so
many connections share one pool step per shard.
"""

from __future__ import annotations

import asyncio
import itertools
import json

import numpy as np

try:
    from websockets.asyncio.server import Server, ServerConnection, serve
except ImportError as e:  # pragma: no cover - exercised only without websockets
    raise ImportError('the WebSocket front needs websockets: pip install "streamlstm[ray]"') from e

from .cluster import ShardLostError, StreamCluster

__all__ = ["FrameBatcher", "start_server"]


class FrameBatcher:
    """Collects one pending frame per stream and advances them together with ``step_async``."""

    def __init__(self, cluster: StreamCluster):
        self._cluster = cluster
        self._pending: dict = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None

    async def submit(self, key, frame: np.ndarray) -> np.ndarray:
        """The output of ``frame`` (already validated) for stream ``key``, once its batch ran."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run())
        if key in self._pending:
            raise ValueError(f"stream {key!r} already has a frame waiting")
        future = asyncio.get_running_loop().create_future()
        self._pending[key] = (frame, future)
        self._wake.set()
        return await future

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch, self._pending = self._pending, {}
            if batch:
                await self._step(batch)

    async def _step(self, batch: dict) -> None:
        for attempt in range(2):
            for key in [k for k in batch if k not in self._cluster]:  # closed meanwhile (idle reclaim)
                batch.pop(key)[1].set_exception(KeyError(f"stream {key!r} is closed"))
            if not batch:
                return
            keys = list(batch)
            try:
                Y = await self._cluster.step_async(keys, np.stack([f for f, _ in batch.values()]))
            except KeyError:
                if attempt == 0:
                    continue
                error: Exception = ShardLostError("stream closed during the step")
            except Exception as e:  # noqa: BLE001 - every waiting connection hears about it
                error = e
            else:
                for (_, future), y in zip(batch.values(), Y):
                    if not future.done():
                        future.set_result(y)
                return
            for _, future in batch.values():
                if not future.done():
                    future.set_exception(error)
            return

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()


def _decode(message: bytes, dtype: np.dtype, size: int) -> np.ndarray:
    wire = dtype.newbyteorder("<")
    if len(message) != size * wire.itemsize:
        raise ValueError(f"frame: expected {size} {dtype.name} values ({size * wire.itemsize} bytes), "
                         f"got {len(message)} bytes")
    frame = np.frombuffer(message, dtype=wire).astype(dtype)
    if not np.isfinite(frame).all():
        raise ValueError("frame: contains NaN or Inf; the stream is unchanged")
    return frame


async def start_server(cluster: StreamCluster, host: str = "127.0.0.1",
                       port: int = 0) -> tuple[Server, FrameBatcher]:
    """Start serving ``cluster`` on ws://host:port (port 0 picks a free one); returns the server
    (``server.sockets[0].getsockname()`` gives the port) and its batcher."""
    batcher = FrameBatcher(cluster)
    numbers = itertools.count()
    dtype, isize, osize = cluster.dtype, cluster.input_size, cluster.output_size
    wire = dtype.newbyteorder("<")

    async def error(ws: ServerConnection, message: str) -> None:
        await ws.send(json.dumps({"error": message}))

    async def handle(ws: ServerConnection) -> None:
        key = f"ws-{next(numbers)}"
        try:
            await asyncio.to_thread(cluster.open, key)
        except (ValueError, ShardLostError) as e:
            await error(ws, f"cannot open a stream: {e}")
            await ws.close(1013, "cannot open a stream")
            return
        try:
            await ws.send(json.dumps({"stream": key, "input_size": isize, "output_size": osize,
                                      "dtype": dtype.name}))
            async for message in ws:
                if isinstance(message, str):
                    if message.strip() == "reset":
                        await asyncio.to_thread(cluster.reset, key)
                        await ws.send(json.dumps({"reset": True}))
                    else:
                        await error(ws, f"unknown command {message[:40]!r}; binary messages are frames")
                    continue
                try:
                    frame = _decode(message, dtype, isize)
                except ValueError as e:
                    await error(ws, str(e))
                    continue
                try:
                    y = await batcher.submit(key, frame)
                except (KeyError, ShardLostError) as e:
                    await error(ws, f"stream lost: {e}")
                    await ws.close(1011, "stream lost")
                    return
                await ws.send(y.astype(wire).tobytes())
        finally:
            if key in cluster:
                try:
                    await asyncio.to_thread(cluster.close, key)
                except KeyError:  # reclaimed meanwhile
                    pass

    server = await serve(handle, host, port)
    return server, batcher
