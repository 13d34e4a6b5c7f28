"""``streamlstm serve MODEL --shards N --port P``: a StreamCluster behind a WebSocket server.

One connection is one stream; the protocol is described in ``streamlstm.cluster_web``. Runs
until SIGINT or SIGTERM. Also runnable as ``python -m streamlstm.tools.serve``.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="streamlstm serve",
                                description="Serve a model's streams over WebSocket, sharded over Ray actors.")
    p.add_argument("model", help="model file (.onnx .pt .keras .npz ...); every shard loads it")
    p.add_argument("--shards", type=int, default=2, help="number of shard actors (default 2)")
    p.add_argument("--port", type=int, default=8765, help="TCP port (default 8765; 0 picks a free one)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--capacity", type=int, default=1024, help="streams per shard (default 1024)")
    p.add_argument("--snapshot-every", type=int, default=32, metavar="K",
                   help="snapshot each shard's states every K of its steps (default 32)")
    p.add_argument("--idle-timeout", type=float, default=None, metavar="SECONDS",
                   help="close streams idle for longer than this (default: never)")
    p.add_argument("--address", default=None,
                   help="Ray cluster address to join (default: start a local Ray instance)")
    p.add_argument("--num-cpus", type=int, default=None, help="CPUs of the local Ray instance")
    return p


async def _serve_until_stopped(cluster, host: str, port: int, model: str) -> None:
    from streamlstm.cluster_web import start_server

    server, batcher = await start_server(cluster, host, port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    bound = server.sockets[0].getsockname()
    print(f"streamlstm serve: ws://{bound[0]}:{bound[1]} ({len(cluster.shards)} shards, {model})", flush=True)
    await stop.wait()
    server.close()
    await server.wait_closed()
    batcher.close()


def main(argv: list[str] | None = None) -> int:
    """Run the server; returns the exit code (2 for a bad command line or model)."""
    args = _parser().parse_args(argv)
    for name in ("shards", "capacity", "snapshot_every"):
        if getattr(args, name) < 1:
            print(f"streamlstm serve: --{name.replace('_', '-')} must be at least 1", file=sys.stderr)
            return 2
    if not Path(args.model).is_file():
        print(f"streamlstm serve: {args.model}: no such file", file=sys.stderr)
        return 2
    try:
        import ray

        from streamlstm.cluster import StreamCluster
    except ImportError as e:
        print(f"streamlstm serve: {e}", file=sys.stderr)
        return 2
    started = not ray.is_initialized()
    if started:
        ray.init(address=args.address, num_cpus=None if args.address else args.num_cpus,
                 include_dashboard=False, log_to_driver=False)
    try:
        try:
            cluster = StreamCluster(args.model, shards=args.shards, capacity=args.capacity,
                                    snapshot_every=args.snapshot_every, idle_timeout=args.idle_timeout)
        except (OSError, ValueError, ray.exceptions.RayActorError) as e:
            print(f"streamlstm serve: cannot start the shards for {args.model}: {e}", file=sys.stderr)
            return 2
        try:
            asyncio.run(_serve_until_stopped(cluster, args.host, args.port, args.model))
        finally:
            cluster.shutdown()
    finally:
        if started:
            ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
