"""The WebSocket front (``streamlstm serve``) with real WebSocket clients on 127.0.0.1: many
connections batched into shared cluster steps, bit-identical to one SessionPool, through bad
frames, a reset and a shard kill; and the command itself run as a process."""

import asyncio
import json
import math
import signal
import subprocess
import sys

import numpy as np
import pytest
import ray
from websockets.asyncio.client import connect

from streamlstm.cluster import StreamCluster
from streamlstm.cluster_web import start_server
from support.cluster_reference import Reference, frames

CLIENTS, FRAMES = 16, 30


@pytest.fixture(scope="module")
def cluster(local_ray, kws_path):
    with StreamCluster(kws_path, shards=2, capacity=64, snapshot_every=8) as c:
        yield c


async def _client(url, ref, rng, events=None):
    """One edge device: hello, then FRAMES frames; returns (outputs, reference outputs)."""
    events = events or {}
    got, want = [], []
    async with connect(url) as ws:
        hello = json.loads(await ws.recv())
        key = hello["stream"]
        ref.open(key)
        assert (hello["input_size"], hello["output_size"], hello["dtype"]) == (
            ref.model.input_size, ref.model.output_size, "float32")
        for t in range(FRAMES):
            if t in events:
                await events[t](ws, ref, key)
            x = frames(rng, 1, ref.model.input_size)
            await ws.send(x.astype("<f4").tobytes())
            got.append(np.frombuffer(await ws.recv(), "<f4"))
            want.append(ref.step([key], x)[0])
            await asyncio.sleep(0)
    return np.array(got), np.array(want)


async def _bad_frames(ws, ref, key):
    await ws.send(np.zeros(ref.model.input_size - 1, "<f4").tobytes())
    assert "expected" in json.loads(await ws.recv())["error"]
    bad = np.zeros(ref.model.input_size, "<f4")
    bad[2] = math.nan
    await ws.send(bad.tobytes())
    assert "NaN" in json.loads(await ws.recv())["error"]


async def _reset(ws, ref, key):
    await ws.send("reset")
    assert json.loads(await ws.recv()) == {"reset": True}
    ref.reset(key)


def test_many_connections_share_steps_bit_identical(cluster, kws_path):
    ref = Reference(kws_path)
    recoveries = cluster.recoveries
    batch_sizes, step_async = [], cluster.step_async

    async def counting_step(keys, X):
        batch_sizes.append(len(keys))
        return await step_async(keys, X)

    async def main():
        server, batcher = await start_server(cluster, "127.0.0.1", 0)
        url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}"

        async def kill(ws, ref, key):
            ray.kill(cluster.shards[0])

        events = [{5: _bad_frames}, {9: _reset}, {12: kill}] + [{}] * (CLIENTS - 3)
        cluster.step_async = counting_step
        try:
            return await asyncio.gather(*(_client(url, ref, np.random.default_rng(i), ev)
                                          for i, ev in enumerate(events)))
        finally:
            del cluster.step_async
            server.close()
            await server.wait_closed()
            batcher.close()

    for got, want in asyncio.run(main()):
        assert np.array_equal(got, want)
    assert cluster.recoveries == recoveries + 1
    assert sum(batch_sizes) == CLIENTS * FRAMES and max(batch_sizes) > 1  # connections share steps
    for _ in range(50):  # the server closes each stream when its connection ends
        if len(cluster) == 0:
            break
        asyncio.run(asyncio.sleep(0.05))
    assert len(cluster) == 0


def test_serve_command_runs_as_a_process(local_ray, kws_path):
    ref = Reference(kws_path)
    address = ray.get_runtime_context().gcs_address
    proc = subprocess.Popen([sys.executable, "-m", "streamlstm.tools.serve", str(kws_path), "--shards", "2",
                             "--port", "0", "--address", address], stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("streamlstm serve: ws://127.0.0.1:"), line
        url = line.split()[2]
        got, want = asyncio.run(_client(url, ref, np.random.default_rng(99)))
        assert np.array_equal(got, want)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=120) == 0


def test_serve_command_rejects_a_missing_model(tmp_path, capsys):
    from streamlstm.tools.serve import main

    assert main([str(tmp_path / "none.npz"), "--port", "0"]) == 2
    assert "no such file" in capsys.readouterr().err
