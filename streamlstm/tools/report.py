"""Presenting a benchmark result (from ``benchmark.run_benchmark``): markdown tables, JSON, PNG plot."""

from __future__ import annotations

import json
from pathlib import Path


def _f(v, digits: int = 1) -> str:
    if v is None:
        return "-"
    if v >= 1000:
        return f"{v:,.0f}"
    return f"{v:.{digits}f}" if v >= 10 else f"{v:.{max(digits, 2)}f}"


def _err(v) -> str:
    return "-" if v is None else ("0" if v == 0 else f"{v:.1e}")


def _model_label(m: dict) -> str:
    return f"{m['name']} ({m['input_size']}->{m['output_size']}, {m['params']:,} params)"


def _warmup(settings: dict) -> str:
    n = settings.get("block_warmup", 0)
    return f", each block after {n} unrecorded call{'s' if n != 1 else ''}" if n else ""


def _blocks(settings: dict) -> str:
    """How the chunk and pool calls were timed (``benchmark._in_blocks``)."""
    n, settle = settings.get("calls_per_block"), settings.get("block_settle_s")
    if not n:
        return "interleaved calls"
    return (f"rotating blocks of {n} recorded calls per engine, each after {settle * 1e3:.0f} ms of "
            "unrecorded calls")


def _stalls(st: dict) -> str:
    """The machine's own tail: what a busy loop lost, and from which call length it reaches p99."""
    if st["per_ms"] == 0:
        return f"Machine stalls: none of {st['threshold_us']:.0f} µs or more in {st['seconds']:.1f} s of a busy loop."
    return (f"Machine stalls: a busy loop that only reads the clock lost the CPU {st['per_ms']:.2f} times per ms, "
            f"for a median {st['median_us']:.0f} µs (p90 {st['p90_us']:.0f} µs, {st['lost_share']:.1%} of the time). "
            f"A call of d µs meets one with probability about d x {st['per_ms']:.2f} / 1000, so the p99 of any "
            f"framework whose calls take more than {10 / st['per_ms']:.1f} µs includes such a stall.")


def _paths(mach: dict) -> str:
    """The host CPU features that chose the kernels' code paths, and those paths."""
    cp = mach.get("code_paths")
    if not cp:
        return "Code paths: not recorded."
    on = [f for f, v in cp["features"].items() if v]
    off = [f for f, v in cp["features"].items() if not v]
    return (f"Code paths chosen from the host CPU ({cp['cpu_name']}; features: {', '.join(on) or 'none'}"
            f"{'; absent: ' + ', '.join(off) if off else ''}): float one-row passes {cp['float_one_row']}, "
            f"several rows {cp['float_many_rows']}; bf16 {cp['bf16_many_rows']}, int8 {cp['int8_many_rows']}"
            f"{'; bf16 dot products ' + cp['bf16_dot'] if 'bf16_dot' in cp else ''}"
            f"{'; int8 dot products ' + cp['int8_dot'] if 'int8_dot' in cp else ''}.")


def _pool_table(result: dict, note) -> list[str]:
    pools = [m for m in result["models"] if m.get("pool", {}).get("frameworks")]
    if not pools:
        return []
    n = pools[0]["pool"]["streams"]
    lines = ["", f"Pool: one frame for each of {n} streams per call (streamlstm `SessionPool.step`, onnxruntime "
                 "the same frames as one batch, its caller gathering and scattering the streams' states); "
                 f"{_blocks(result['settings'])}. Speedup = p50 of the best onnxruntime variant / p50. "
                 "Max abs deviation: from the first row's outputs (float32 weights; weights=bf16dot "
                 "rounds weights and product inputs to bf16, weights=int8dot quantises them to int8).", "",
             "| model | engine | p50 per call (µs) | p90 per call (µs) | frames/s at p50 | speedup vs best ORT "
             "| max abs deviation |",
             "|---|---|---:|---:|---:|---:|---:|"]
    return lines + _mode_rows(pools, "pool", "pool", note, lambda r: (
        f"{_f(r['p50_us'])} | {_f(r['p90_us'])} | {r['frames_per_s'] / 1e6:.2f} M | "
        f"{_speedup(r.get('speedup_vs_best_ort'))} | {r.get('max_abs_error', 0.0):.1e}"))


def _speedup(sp) -> str:
    return "-" if sp is None else f"{sp:.2f}x"


def _mode_rows(models: list[dict], mode: str, what: str, note, cells) -> list[str]:
    """The rows of the chunk or pool table (``mode``): a model's name on its first row, the
    status of a framework that did not run (noted under ``what``), else ``cells(row)``."""
    lines = []
    for m in models:
        label = m["name"]
        for r in m[mode]["frameworks"]:
            name = f"**{r['name']}**" if r["framework"] == "streamlstm" else r["name"]
            if r["status"] != "ok":
                lines.append(f"| {label} | {name} | {r['status']} | | | |")
                note(f"{what}, {r['name']}: {r.get('note', '')}", m["name"])
            else:
                lines.append(f"| {label} | {name} | {cells(r)} |")
            label = ""
    return lines


def markdown(result: dict) -> str:
    """The code paths, the per-step table, the chunk table, the pool table, cold starts and notes, as markdown."""
    s = result["settings"]
    mach = result["machine"]
    lines = [
        f"streamlstm {result['streamlstm_version']} · {result['date']} · {mach['cpu']} ({mach['cores']} cores) · "
        f"Python {mach['python']}",
        "",
        _paths(mach),
        "",
        f"Per-step latency in µs (one frame per call, batch 1; {s['steps']} timed steps per framework in "
        f"interleaved rounds of {s['block']}{_warmup(s)}). Speedup = p50 of the best onnxruntime variant at "
        f"{s['threads']} intra-op thread{'s' if s['threads'] != 1 else ''} / p50.",
        "",
        "| model | framework | p50 | p90 | p99 | p99.9 | speedup vs ORT | max abs err |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    notes: dict[str, list[str]] = {}

    def note(text: str, model: str) -> None:
        notes.setdefault(text, []).append(model)

    for m in result["models"]:
        label = _model_label(m)
        for r in m["frameworks"]:
            name = f"**{r['name']}**" if r["framework"] == "streamlstm" else r["name"]
            if r["status"] == "ok":
                lines.append(f"| {label} | {name} | {_f(r['p50_us'])} | {_f(r['p90_us'])} | {_f(r['p99_us'])} | "
                             f"{_f(r['p999_us'])} | {_speedup(r.get('speedup_vs_ort'))} | "
                             f"{_err(r['max_abs_error'])} |")
            else:
                lines.append(f"| {label} | {name} | {r['status']} | | | | | {_err(r.get('max_abs_error'))} |")
            if r.get("note"):
                note(f"{r['name']}: {r['note']}", m["name"])
            label = ""
        if m.get("onnx"):
            note(f"onnxruntime and tract run {m['onnx']}", m["name"])
    if result.get("machine_stalls"):
        lines += ["", _stalls(result["machine_stalls"])]
    chunks = [m for m in result["models"] if m.get("chunk", {}).get("frameworks")]
    if chunks:
        T = chunks[0]["chunk"]["T"]
        lines += ["", f"Chunk mode: T={T} frames per call (streamlstm `Session.run`, others their sequence call), "
                      "continuing the stream (models that run backwards in time: whole sequences from a fresh "
                      f"state, streamlstm `Model.run`); µs; {_blocks(result['settings'])}. Speedup = p50 "
                      "of the best onnxruntime variant of the model (any thread count) / p50.", "",
                  "| model | framework | p50 per call | p90 per call | p50 per frame | speedup vs best ORT |",
                  "|---|---|---:|---:|---:|---:|"]
        lines += _mode_rows(chunks, "chunk", "chunk mode", note, lambda r: (
            f"{_f(r['p50_us'])} | {_f(r['p90_us'])} | {_f(r['per_frame_p50_us'], 2)} | "
            f"{_speedup(r.get('speedup_vs_best_ort', r.get('speedup_vs_ort')))}"))
    lines += _pool_table(result, note)
    colds = [m for m in result["models"] if "cold_start" in m]
    if colds:
        lines.append("")
        for m in colds:
            c = m["cold_start"]
            if "error" in c:
                lines.append(f"Cold start {m['name']}: failed ({c['error']})")
            else:
                floor = c.get("numba_floor_seconds")
                floor = (f"; a trivial cached `@njit` function, import numpy + numba + first call: "
                         f"{floor:.3f} s" if floor else "")
                lines.append(f"Cold start {m['name']}: new process with a warm compile cache, import + load + "
                             f"first step: **{c['seconds']:.3f} s** (whole process including interpreter "
                             f"start-up: {c['process_seconds']:.3f} s; median of {c['runs']}{floor})")
    if notes:
        lines += ["", "Notes:"] + [f"- {', '.join(ms)}: {text}" for text, ms in notes.items()]
    return "\n".join(lines) + "\n"


def write_json(result: dict, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1) + "\n")
    return path


def _style(name: str, threads: int) -> dict:
    if name.startswith("streamlstm"):
        return {"color": "black", "lw": 2.6, "ls": "-" if name == "streamlstm" else "--"}
    if name.startswith("onnxruntime"):
        pinned = f"({threads} thread" in name
        return {"color": "tab:blue" if pinned else "tab:cyan", "lw": 1.4,
                "ls": "--" if "iobinding" in name else "-"}
    if name.startswith("pytorch"):
        return {"color": "tab:orange", "lw": 1.4, "ls": "-"}
    if name.startswith("tract"):
        return {"color": "tab:green", "lw": 1.4, "ls": "-"}
    return {"color": "tab:gray", "lw": 1.2, "ls": ":"}


def plot(result: dict, path: str | Path) -> Path:
    """Per model, per-step latency (log) against percentile on a tail-stretching axis, per framework."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    models = [m for m in result["models"] if any(r.get("quantiles_us") for r in m["frameworks"])]
    n = max(len(models), 1)
    cols = min(n, 3)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.9 * rows), squeeze=False)
    q = np.asarray(result["quantiles"])
    x = -np.log10(1.0 - q / 100.0)
    ticks = [50, 90, 99, 99.9]
    threads = result["settings"]["threads"]
    names = []
    for ax, m in zip(axes.flat, models):
        for r in m["frameworks"]:
            if not r.get("quantiles_us"):
                continue
            if r["name"] not in names:
                names.append(r["name"])
            ax.plot(x, r["quantiles_us"], label=r["name"], **_style(r["name"], threads))
        ax.set_yscale("log")
        ax.set_xticks([-np.log10(1 - t / 100) for t in ticks], [f"p{t:g}" for t in ticks])
        ax.set_xlim(x[0], x[-1])
        ax.set_title(_model_label(m), fontsize=9)
        ax.set_ylabel("µs per step (log)")
        ax.grid(True, which="both", alpha=0.3)
    for ax in list(axes.flat)[len(models):]:
        ax.axis("off")
    handles = [plt.Line2D([], [], **_style(nm, threads)) for nm in names]
    nrow = -(-len(names) // 4)
    fig.legend(handles, names, loc="lower center", ncol=min(len(names), 4), fontsize=8, frameon=False)
    fig.suptitle(f"Per-step latency by percentile, one frame per call, batch 1 ({result['date']})", fontsize=10)
    fig.tight_layout(rect=(0, 0.03 + 0.035 * nrow / rows, 1, 0.96))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
