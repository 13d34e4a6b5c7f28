"""The ``streamlstm`` command: bench, info, convert, verify.

  streamlstm bench [MODEL ...]      latency side by side with onnxruntime, PyTorch and tract
                                    (the zoo when no MODEL is given)
  streamlstm info MODEL             layers, sizes, parameters, state, weight bytes (+ ONNX tensor names)
  streamlstm convert IN OUT         to native .npz or ONNX (.onnx)
  streamlstm verify MODEL           streamlstm vs an independent origin: onnxruntime, Keras, or
                                    your own PyTorch module (--module pkg.mod:Class)
  streamlstm compile                fill the kernel cache ahead of time (image builds)
  streamlstm serve MODEL            streams over WebSocket on a Ray StreamCluster (extra [serve]);
                                    see ``streamlstm serve --help``

Exit codes: 0 ok, 1 verification failed or runtime error, 2 bad usage or bad input.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import traceback
from pathlib import Path

from .. import StreamLSTMError, __version__
from .arguments import (WEIGHT_FORMATS, bounded_float, bounded_int, csv, load_options, loading_parser,
                        parse_json_args)

log = logging.getLogger("streamlstm")

# Exit codes: one convention for every subcommand.
OK, FAILED, USAGE = 0, 1, 2

MAX_STEPS = 10**6           # timed steps per framework (one int64 time each)
MAX_FRAMES = 10**6          # frames streamed by verify / checked by bench


class UsageError(Exception):
    """A bad command line or bad input file (exit code 2)."""


def _load(path, **kwargs):
    """``streamlstm.load`` with the command line's options; an option the format does not take
    is a usage error."""
    from .. import load

    try:
        return load(path, **kwargs)
    except TypeError as e:
        if "argument" in str(e) or "options" in str(e):
            raise UsageError(f"{path}: {e}") from None
        raise


def _about(path: Path, e: BaseException) -> str:
    """The message of ``e``, naming ``path`` once."""
    text = str(e) or type(e).__name__
    return text if str(path) in text else f"{path}: {text}"


# ---------------------------------------------------------------------------- bench
def cmd_bench(args) -> int:
    from . import benchmark, report

    frameworks = tuple(csv(args.frameworks)) if args.frameworks else benchmark.FRAMEWORKS
    unknown = set(frameworks) - set(benchmark.FRAMEWORKS)
    if unknown:
        raise UsageError(f"unknown framework(s) {sorted(unknown)}; "
                         f"known: {', '.join(benchmark.FRAMEWORKS)}")
    names = csv(args.models) if args.models else None
    unknown = set(names or ()) - set(benchmark.NAMES)
    if unknown:
        raise UsageError(f"unknown zoo model(s) {sorted(unknown)}; known: {', '.join(benchmark.NAMES)}")
    opts = load_options(args)
    targets = []
    for m in args.model:
        try:
            targets.append(benchmark.file_target(m, args.dtype, **opts))
        except TypeError as e:
            raise UsageError(f"{m}: {e}") from None
    if args.models or not args.model:
        targets += benchmark.zoo_targets(names, args.dtype, args.weights)
    s = benchmark.Settings(steps=args.steps, block=min(args.block, args.steps), block_warmup=args.block_warmup,
                           threads=args.threads,
                           check_steps=args.check_steps, chunk=args.chunk, pool=args.pool,
                           chunk_reps=max(5, min(50, args.steps // 100)), frameworks=frameworks,
                           cold_start=not args.no_cold_start, seed=args.seed)
    progress = sys.stderr.isatty() if args.progress is None else args.progress
    result = benchmark.run_benchmark(targets, s, progress=progress, argv=args.argv)
    sys.stdout.write(report.markdown(result))
    sys.stdout.flush()
    if args.json:
        log.info("wrote %s", report.write_json(result, args.json))
    if args.plot:
        try:
            log.info("wrote %s", report.plot(result, args.plot))
        except ImportError:
            log.warning("no plot: matplotlib is not installed (pip install 'streamlstm[bench]')")
    if not result["checks_passed"]:
        log.error("some framework's outputs did not match streamlstm's (see the table)")
        return FAILED
    return OK


# ---------------------------------------------------------------------------- info
def _describe(model) -> dict:
    net, p = model.network, model.plan
    layers = [{"kind": type(layer).__name__, "parameters": int(sum(a.size for a in layer.arrays().values()))}
              for layer in net.layers]
    return {
        "summary": net.summary(),
        "layers": layers,
        "input_size": model.input_size,
        "output_size": model.output_size,
        "parameters": sum(layer["parameters"] for layer in layers),
        "dtype": p.dtype.name,
        "weight_format": p.weight_format,
        "state_size": model.state_size,
        "state_bytes": model.state_size * p.dtype.itemsize,
        "weight_bytes": p.weight_bytes,
        "streamable": model.streamable,
    }


def _print_info(d: dict) -> None:
    print(d["summary"])
    print(f"input size        {d['input_size']}")
    print(f"output size       {d['output_size']}")
    print(f"parameters        {d['parameters']:,}")
    print(f"state size        {d['state_size']} values ({d['state_bytes']:,} bytes)")
    print(f"weight bytes      {d['weight_bytes']:,} ({d['dtype']}, {d['weight_format']}, packed)")
    print(f"streamable        {'yes' if d['streamable'] else 'no (reverse/bidirectional: Model.run only)'}")


def _print_tensors(rows: list[dict]) -> None:
    print(f"\nONNX tensors a sub-graph import can start or end at "
          f"(streamlstm.load(path, inputs=[...], outputs=[...]); {len(rows)}):")
    w = max([len(r["name"]) for r in rows] + [6])
    wo = max([len(r["op"]) for r in rows] + [2])
    print(f"  {'tensor':<{w}}  {'op':<{wo}}  shape")
    for r in rows:
        print(f"  {r['name']:<{w}}  {r['op']:<{wo}}  {r['shape']}")


def cmd_info(args) -> int:
    path = Path(args.model)
    if not path.exists():
        raise UsageError(f"{path}: no such file or directory")
    info: dict = {"path": str(path)}
    try:
        info.update(_describe(_load(path, dtype=args.dtype, **load_options(args))))
    except StreamLSTMError as e:
        info["error"] = _about(path, e)
        log.error("cannot import %s", info["error"])
    if path.suffix.lower() == ".onnx" and (args.format in (None, "onnx")):
        from ..converters.onnx import tensor_names

        try:
            info["onnx_tensors"] = [{"name": n, "op": op, "shape": shape} for n, op, shape in tensor_names(path)]
        except StreamLSTMError:
            pass  # the import error above already says what is wrong with the file
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        if "error" not in info:
            _print_info(info)
        if "onnx_tensors" in info:
            _print_tensors(info["onnx_tensors"])
    return USAGE if "error" in info else OK


# ---------------------------------------------------------------------------- convert
def cmd_convert(args) -> int:
    out = Path(args.output)
    kind = out.suffix.lower()
    if kind not in (".npz", ".onnx"):
        raise UsageError(f"{out}: the output must end in .npz (native) or .onnx")
    model = _load(args.input, dtype=args.dtype, **load_options(args))
    if kind == ".npz":
        model.save(out)
    else:
        model.to_onnx(out)
    print(f"wrote {out} ({'native network' if kind == '.npz' else 'ONNX, explicit state inputs/outputs'}, "
          f"{model.input_size}->{model.output_size})")
    return OK


# ---------------------------------------------------------------------------- verify
def cmd_verify(args) -> int:
    from .verify import verify

    if args.module_args is not None and not args.module:
        raise UsageError("--module-args needs --module")
    opts = load_options(args)
    try:
        v = verify(args.model, frames=args.frames, seed=args.seed, tolerance=args.tolerance,
                   module=args.module, module_args=args.module_args, **opts)
    except TypeError as e:
        raise UsageError(f"{args.model}: {e}") from None
    if args.json:
        print(json.dumps({**v.as_dict()}, indent=2))
    else:
        print(f"verify {v.path} against {v.framework}: {v.frames} random frames" + (f", {v.how}" if v.how else ""))
        for name, err in v.errors.items():
            print(f"  {name}: max abs error {err:.3e} ({'ok' if err <= v.tolerance else 'ABOVE'} "
                  f"tolerance {v.tolerance:g})")
        if v.error is None:
            print("PASSED" if v.passed else "FAILED")
    if v.error is not None:
        log.error("could not verify %s", _about(Path(v.path), v.error))
    return OK if v.passed else FAILED


# ---------------------------------------------------------------------------- compile
def cmd_compile(args) -> int:
    from ..aot import compile as compile_kernels

    done = compile_kernels(dtype=args.dtype, weights=args.weights)
    kinds = ", ".join(f"{d}/{w}" for d, w in done.kinds)
    if done.cache_dir is None:
        print(f"streamlstm compile: compiled {kinds}, but no cache directory is usable, so nothing was kept; "
              "set NUMBA_CACHE_DIR to a writable directory", file=sys.stderr)
        return 1
    state = "" if done.cache_writable else " (read-only: entries missing from it were not saved)"
    print(f"kernels for {kinds} ready in {done.cache_dir}{state} ({done.seconds:.1f} s)")
    return 0 if done.cache_writable else 1


def _add_compile_parser(sub) -> None:
    p = sub.add_parser("compile", help="fill the kernel cache ahead of time (image builds)",
                       description="Compile (or load) every kernel entry point a model can use: Session.step "
                       "and run on one and two threads, Model.run, SessionPool.step. The cache goes to "
                       "NUMBA_CACHE_DIR when set (ship that directory; it is tied to the CPU model, Python "
                       "and Numba versions), else beside the package. Exit code 1 if nothing could be kept.")
    p.add_argument("--dtype", nargs="+", default=["float32"], choices=("float32", "float64"))
    p.add_argument("--weights", nargs="+", default=["float"], choices=WEIGHT_FORMATS,
                   help="weight formats (all but float need float32; default float)")
    p.set_defaults(func=cmd_compile)


# ---------------------------------------------------------------------------- parser
def _dtype(p: argparse.ArgumentParser, help: str | None = None) -> None:
    p.add_argument("--dtype", default="float32", choices=("float32", "float64"), help=help)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="streamlstm", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"streamlstm {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="only errors on stderr")
    parser.add_argument("--traceback", action="store_true", help="show the traceback of an unexpected error")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    loading = loading_parser()

    b = sub.add_parser("bench", parents=[loading], help="latency side by side with onnxruntime, PyTorch, tract",
                       description="Compare per-step latency of streamlstm with onnxruntime (run and "
                       "run_with_iobinding, pinned and default threads), PyTorch and tract, one frame per call, "
                       "after checking every framework's outputs against streamlstm's. Prints a markdown table; "
                       "writes JSON (--json) and a PNG plot (--plot) only when asked. Exit code 1 if a "
                       "framework's outputs did not match.")
    b.add_argument("model", nargs="*", help="model files (.onnx .pt .pth .safetensors .keras .h5 .npz); "
                                             "none: the zoo")
    b.add_argument("--models", metavar="NAMES", help="zoo models to run (comma-separated: tiny,kws,vad,enh,big)")
    b.add_argument("--steps", type=bounded_int(1, MAX_STEPS), default=3000,
                   help="timed steps per framework and model (default 3000)")
    b.add_argument("--threads", type=bounded_int(1, 1024), default=1,
                   help="intra-op threads of the pinned onnxruntime variants and PyTorch (default 1)")
    b.add_argument("--json", metavar="PATH", help="write the results as JSON to PATH")
    b.add_argument("--plot", metavar="PATH", help="write a PNG plot to PATH (needs matplotlib)")
    b.add_argument("--frameworks", metavar="NAMES",
                   help="comma-separated subset of streamlstm,onnxruntime,pytorch,tract (default all)")
    b.add_argument("--chunk", type=bounded_int(0, MAX_FRAMES), default=100,
                   help="frames per call in chunk mode (0: skip; default 100)")
    b.add_argument("--pool", type=bounded_int(0, 65536), default=0, metavar="STREAMS",
                   help="add the pool table: SessionPool.step advancing STREAMS streams by one frame per "
                        "call against onnxruntime's batched call on the same frames (e.g. 256; default 0: "
                        "no pool table)")
    b.add_argument("--check-steps", type=bounded_int(1, MAX_FRAMES), default=200,
                   help="frames compared against streamlstm before timing (default 200)")
    b.add_argument("--block", type=bounded_int(1, MAX_STEPS), default=250,
                   help="frames per framework per round (default 250)")
    b.add_argument("--block-warmup", type=bounded_int(0, MAX_STEPS), default=5,
                   help="unrecorded calls at the start of each block (default 5)")
    b.add_argument("--no-cold-start", action="store_true", help="skip the new-process cold-start measure")
    _dtype(b)
    b.add_argument("--seed", type=bounded_int(0, 2**63 - 1), default=0)
    pg = b.add_mutually_exclusive_group()
    pg.add_argument("--progress", dest="progress", action="store_true", default=None,
                    help="show a progress bar on stderr (default: when stderr is a terminal)")
    pg.add_argument("--no-progress", dest="progress", action="store_false")
    b.set_defaults(func=cmd_bench)

    i = sub.add_parser("info", parents=[loading], help="layers, sizes, parameters, state, weight bytes")
    i.add_argument("model")
    _dtype(i)
    i.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    i.set_defaults(func=cmd_info)

    c = sub.add_parser("convert", parents=[loading], help="convert to native .npz or ONNX")
    c.add_argument("input")
    c.add_argument("output", help="output path ending in .npz or .onnx")
    _dtype(c, "ONNX export dtype")
    c.set_defaults(func=cmd_convert)

    v = sub.add_parser("verify", parents=[loading], help="compare with the framework the file comes from",
                       description="Stream random frames through streamlstm and an independent origin: "
                       "onnxruntime for ONNX, Keras for .keras/.h5, and for a PyTorch state dict your own "
                       "module (--module pkg.mod:Class), which the file's weights are loaded into. Prints the "
                       "max abs error per output. Exit code 1 above the tolerance or if the origin failed to "
                       "run, 2 on bad usage or input.")
    v.add_argument("model")
    v.add_argument("--module", metavar="PKG.MOD:CLASS",
                   help="PyTorch: the nn.Module class the state dict belongs to (its forward() is the truth)")
    v.add_argument("--module-args", type=parse_json_args, metavar="JSON",
                   help="arguments of the --module class: a JSON object (keywords) or list (positional)")
    v.add_argument("--frames", type=bounded_int(1, MAX_FRAMES), default=500,
                   help="random frames to stream (default 500)")
    v.add_argument("--tolerance", type=bounded_float(0.0), default=1e-4,
                   help="max abs error allowed (default 1e-4)")
    v.add_argument("--seed", type=bounded_int(0, 2**63 - 1), default=0)
    v.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    v.set_defaults(func=cmd_verify)
    _add_compile_parser(sub)
    return parser


class _StderrFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        prefix = "" if record.levelno < logging.WARNING else f"{record.levelname.lower()}: "
        return f"streamlstm: {prefix}{record.getMessage()}"


def _configure_logging(quiet: bool) -> tuple[logging.Handler, int]:
    """Records of the ``streamlstm`` logger go to stderr while the command runs."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_StderrFormatter())
    # compile notices print their own stderr line: one line each, not two
    handler.addFilter(lambda record: not getattr(record, "streamlstm_on_stderr", False))
    level = log.level
    log.addHandler(handler)
    log.setLevel(logging.ERROR if quiet else logging.INFO)
    return handler, level


def _silence_stdout() -> None:
    """After a broken pipe (``streamlstm info m.onnx | head``): no error at interpreter exit."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["serve"]:  # a long-running server with its own options (and optional extras)
        from .serve import main as serve

        return serve(argv[1:])
    parser = build_parser()
    try:
        args = parser.parse_args(argv)  # exits with code 2 on a bad command line
        if args.command is None:
            parser.print_help()
            return OK
    except BrokenPipeError:
        _silence_stdout()
        return FAILED
    args.argv = argv
    handler, level = _configure_logging(args.quiet)
    try:
        status = args.func(args)
        sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
        return status
    except BrokenPipeError:
        _silence_stdout()
        return FAILED
    except KeyboardInterrupt:
        print(f"streamlstm {args.command}: interrupted", file=sys.stderr)
        return 130
    except (UsageError, StreamLSTMError, FileNotFoundError, IsADirectoryError, NotADirectoryError,
            PermissionError, ValueError) as e:
        print(f"streamlstm {args.command}: {e}", file=sys.stderr)
        return USAGE
    except ImportError as e:  # an optional dependency; the extras are in the README's Install section
        missing = getattr(e, "name", None) or "an optional dependency"
        print(f"streamlstm {args.command}: {missing} is needed here and is not installed "
              f"(pip install {missing}; the README's Install section lists the extras): {e}", file=sys.stderr)
        return FAILED
    except Exception as e:  # noqa: BLE001 - one line, not a traceback, unless asked
        if args.traceback:
            traceback.print_exc()
        print(f"streamlstm {args.command}: {type(e).__name__}: {e}", file=sys.stderr)
        return FAILED
    finally:
        log.removeHandler(handler)
        log.setLevel(level)


if __name__ == "__main__":
    sys.exit(main())
