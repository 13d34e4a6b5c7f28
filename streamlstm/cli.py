"""The ``streamlstm`` command: bench, info, convert, verify.

  streamlstm bench [MODEL ...]      latency side by side with onnxruntime, PyTorch and tract
                                    (the zoo when no MODEL is given)
  streamlstm info MODEL             layers, sizes, parameters, state, weight bytes (+ ONNX tensor names)
  streamlstm convert IN OUT         to native .npz or ONNX (.onnx)
  streamlstm verify MODEL           streamlstm vs the framework the file comes from
  streamlstm compile                fill the kernel cache ahead of time (image builds)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import __version__
from .errors import StreamLSTMError


class UsageError(Exception):
    """A bad command line (exit code 2)."""


def _csv(text: str) -> list[str]:
    return [t for t in (s.strip() for s in text.split(",")) if t]


def _load_options(args) -> dict:
    opts = {}
    if getattr(args, "inputs", None):
        opts["inputs"] = _csv(args.inputs)
    if getattr(args, "outputs", None):
        opts["outputs"] = _csv(args.outputs)
    if getattr(args, "key", None):
        opts["key"] = args.key
    if getattr(args, "prefix", None):
        opts["prefix"] = args.prefix
    return opts


def _loading_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("import options")
    g.add_argument("--inputs", metavar="NAMES", help="ONNX: tensor names where the imported part starts (comma-separated)")
    g.add_argument("--outputs", metavar="NAMES", help="ONNX: tensor names where the imported part ends (comma-separated)")
    g.add_argument("--key", help="PyTorch: key of the state dict inside a nested checkpoint")
    g.add_argument("--prefix", help="PyTorch: keep only state-dict keys under this prefix (and strip it)")
    return p


# ---------------------------------------------------------------------------- bench
def cmd_bench(args) -> int:
    from . import benchmark, report

    if args.steps < 1 or args.threads < 1:
        raise UsageError("--steps and --threads must be >= 1")
    if args.block_warmup < 0:
        raise UsageError("--block-warmup must be >= 0")
    frameworks = tuple(_csv(args.frameworks)) if args.frameworks else benchmark.FRAMEWORKS
    unknown = set(frameworks) - set(benchmark.FRAMEWORKS)
    if unknown:
        raise UsageError(f"unknown framework(s) {sorted(unknown)}; "
                         f"known: {', '.join(benchmark.FRAMEWORKS)}")
    targets = [benchmark.file_target(m, args.dtype, **_load_options(args)) for m in args.model]
    if args.models or not args.model:
        targets += benchmark.zoo_targets(_csv(args.models) if args.models else None, args.dtype)
    s = benchmark.Settings(steps=args.steps, block=min(args.block, args.steps), block_warmup=args.block_warmup,
                           threads=args.threads,
                           check_steps=args.check_steps, chunk=args.chunk,
                           chunk_reps=max(5, min(50, args.steps // 100)), frameworks=frameworks,
                           cold_start=not args.no_cold_start, seed=args.seed)
    progress = sys.stderr.isatty() if args.progress is None else args.progress
    argv = args.argv
    result = benchmark.run_benchmark(targets, s, progress=progress, argv=argv)
    sys.stdout.write(report.markdown(result))
    json_path = report.write_json(result, args.json)
    print(f"\nwrote {json_path}", file=sys.stderr)
    if not args.no_plot:
        png = Path(args.plot) if args.plot else json_path.with_suffix(".png")
        try:
            report.plot(result, png)
            print(f"wrote {png}", file=sys.stderr)
        except ImportError:
            print("no plot: matplotlib is not installed (pip install 'streamlstm[bench]')", file=sys.stderr)
    if not result["checks_passed"]:
        print("some framework's outputs did not match streamlstm's (see the table)", file=sys.stderr)
        return 1
    return 0


# ---------------------------------------------------------------------------- info
def cmd_info(args) -> int:
    from .loading import load

    path = Path(args.model)
    status = 0
    try:
        model = load(path, dtype=args.dtype, **_load_options(args))
    except StreamLSTMError as e:
        print(f"{path}: cannot import: {e}")
        model, status = None, 1
    if model is not None:
        net, p = model.network, model.plan
        params = sum(a.size for l in net.layers for a in l.arrays().values())
        print(net.summary())
        print(f"input size        {model.input_size}")
        print(f"output size       {model.output_size}")
        print(f"parameters        {params:,}")
        print(f"state size        {model.state_size} values ({model.state_size * p.dtype.itemsize:,} bytes)")
        print(f"weight bytes      {p.weight_bytes:,} ({p.dtype.name}, packed)")
        print(f"streamable        {'yes' if model.streamable else 'no (reverse/bidirectional: Model.run only)'}")
    if path.suffix.lower() == ".onnx":
        from .converters.onnx import tensor_names

        rows = tensor_names(path)
        print(f"\nONNX tensors a sub-graph import can start or end at "
              f"(streamlstm.load(path, inputs=[...], outputs=[...]); {len(rows)}):")
        w = max([len(r[0]) for r in rows] + [6])
        wo = max([len(r[1]) for r in rows] + [2])
        print(f"  {'tensor':<{w}}  {'op':<{wo}}  shape")
        for name, op, shape in rows:
            print(f"  {name:<{w}}  {op:<{wo}}  {shape}")
    return status


# ---------------------------------------------------------------------------- convert
def cmd_convert(args) -> int:
    from .loading import load

    out = Path(args.output)
    kind = out.suffix.lower()
    if kind not in (".npz", ".onnx"):
        raise UsageError(f"{out}: the output must end in .npz (native) or .onnx")
    model = load(args.input, dtype=args.dtype, **_load_options(args))
    if kind == ".npz":
        model.save(out)
    else:
        model.to_onnx(out)
    print(f"wrote {out} ({'native network' if kind == '.npz' else 'ONNX, explicit state inputs/outputs'}, "
          f"{model.input_size}->{model.output_size})")
    return 0


# ---------------------------------------------------------------------------- verify
def cmd_verify(args) -> int:
    from .verify import verify

    v = verify(args.model, frames=args.frames, seed=args.seed, tolerance=args.tolerance, **_load_options(args))
    print(f"verify {v.path} against {v.framework}: {v.frames} random frames" + (f", {v.how}" if v.how else ""))
    if v.error is not None:
        print(f"  could not verify: {v.error}")
        return 2
    for name, err in v.errors.items():
        print(f"  {name}: max abs error {err:.3e} ({'ok' if err <= v.tolerance else 'ABOVE'} "
              f"tolerance {v.tolerance:g})")
    print("PASSED" if v.passed else "FAILED")
    return 0 if v.passed else 1


# ---------------------------------------------------------------------------- compile
def cmd_compile(args) -> int:
    from .aot import compile as compile_kernels

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
    p.add_argument("--weights", nargs="+", default=["float"], choices=("float", "bf16", "int8"),
                   help="weight formats (bf16 and int8 need float32; default float)")
    p.set_defaults(func=cmd_compile)


# ---------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="streamlstm", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"streamlstm {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    loading = _loading_parser()

    b = sub.add_parser("bench", parents=[loading], help="latency side by side with onnxruntime, PyTorch, tract",
                       description="Compare per-step latency of streamlstm with onnxruntime (run and "
                       "run_with_iobinding, pinned and default threads), PyTorch and tract, one frame per call, "
                       "after checking every framework's outputs against streamlstm's. Prints a markdown table, "
                       "writes JSON and a PNG plot. Exit code 1 if a framework's outputs did not match.")
    b.add_argument("model", nargs="*", help="model files (.onnx .pt .pth .safetensors .keras .h5 .npz); "
                                             "none: the zoo")
    b.add_argument("--models", metavar="NAMES", help="zoo models to run (comma-separated: tiny,kws,vad,enh,big)")
    b.add_argument("--steps", type=int, default=3000, help="timed steps per framework and model (default 3000)")
    b.add_argument("--threads", type=int, default=1,
                   help="intra-op threads of the pinned onnxruntime variants and PyTorch (default 1)")
    b.add_argument("--json", default="streamlstm-bench.json", help="JSON output (default streamlstm-bench.json)")
    b.add_argument("--plot", help="PNG output (default: the JSON path with .png)")
    b.add_argument("--no-plot", action="store_true", help="do not write the PNG")
    b.add_argument("--frameworks", metavar="NAMES",
                   help="comma-separated subset of streamlstm,onnxruntime,pytorch,tract (default all)")
    b.add_argument("--chunk", type=int, default=100, help="frames per call in chunk mode (0: skip; default 100)")
    b.add_argument("--check-steps", type=int, default=200,
                   help="frames compared against streamlstm before timing (default 200)")
    b.add_argument("--block", type=int, default=250, help="frames per framework per round (default 250)")
    b.add_argument("--block-warmup", type=int, default=5,
                   help="unrecorded calls at the start of each block (default 5)")
    b.add_argument("--no-cold-start", action="store_true", help="skip the new-process cold-start measure")
    b.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    b.add_argument("--seed", type=int, default=0)
    pg = b.add_mutually_exclusive_group()
    pg.add_argument("--progress", dest="progress", action="store_true", default=None,
                    help="show a progress bar on stderr (default: when stderr is a terminal)")
    pg.add_argument("--no-progress", dest="progress", action="store_false")
    b.set_defaults(func=cmd_bench)

    i = sub.add_parser("info", parents=[loading], help="layers, sizes, parameters, state, weight bytes")
    i.add_argument("model")
    i.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    i.set_defaults(func=cmd_info)

    c = sub.add_parser("convert", parents=[loading], help="convert to native .npz or ONNX")
    c.add_argument("input")
    c.add_argument("output", help="output path ending in .npz or .onnx")
    c.add_argument("--dtype", default="float32", choices=("float32", "float64"), help="ONNX export dtype")
    c.set_defaults(func=cmd_convert)

    v = sub.add_parser("verify", parents=[loading], help="compare with the framework the file comes from",
                       description="Stream random frames through streamlstm and the framework of origin "
                       "(onnxruntime for ONNX, PyTorch for checkpoints, Keras for .keras/.h5) and print the "
                       "max abs error per output. Exit code 1 above the tolerance, 2 if it could not run.")
    v.add_argument("model")
    v.add_argument("--frames", type=int, default=500, help="random frames to stream (default 500)")
    v.add_argument("--tolerance", type=float, default=1e-4, help="max abs error allowed (default 1e-4)")
    v.add_argument("--seed", type=int, default=0)
    v.set_defaults(func=cmd_verify)
    _add_compile_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    args.argv = argv
    try:
        return args.func(args)
    except (UsageError, StreamLSTMError, OSError, ValueError) as e:
        print(f"streamlstm {args.command}: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
