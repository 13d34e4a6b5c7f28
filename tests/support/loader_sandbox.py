"""Load untrusted model files in a child process, so a crash, hang or memory bomb is an outcome.

Parent side::

    with Sandbox(workdir) as box:
        out = box.load("model.onnx")          # an Outcome
        assert out.problem() is None, out.problem()

The child (this file run as a script) imports streamlstm and every converter, warms the JIT up,
then caps its own address space at (current size + ``mem_limit_mb``) with ``setrlimit`` and
serves one JSON request per line on stdin: ``sl.load`` the file, run the model on a few frames
when it loads, and reply with what happened (exception type, time, peak resident memory of that
call from ``/proc/self/status`` after resetting it through ``/proc/self/clear_refs``). The parent
waits ``timeout`` seconds per request and restarts the child after a crash or a hang. Each
payload in the corpus touches ``$STREAMLSTM_FUZZ_MARKER``; the parent points it into the work
directory, so code execution shows up as a file there.
"""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]  # tests/
SEED_FOR_WARMUP = HERE / "corpus" / "seeds" / "tiny.npz"
MAX_RUN_WIDTH = 1 << 16  # a loaded model wider than this is not run (5 frames would not fit the cap)


@dataclass
class Outcome:
    """What one sandboxed load did."""

    path: str
    status: str                      # "ok" (loaded and ran), "error" (raised), "crash", "hang"
    exc: str = ""                    # exception class of an error
    value_error: bool = False        # the exception is a ValueError (ConversionError, NetworkError)
    message: str = ""
    seconds: float = 0.0
    peak_rss_mb: float = 0.0         # peak resident memory during the call, above the level before it
    memory_error: bool = False       # a MemoryError was raised somewhere (maybe wrapped): an allocation hit the cap
    run_error: str = ""              # the file loaded but running it raised this
    detail: str = ""                 # traceback of an unexpected exception, or the child's stderr tail
    extra: dict = field(default_factory=dict)

    def problem(self, *, max_seconds: float, max_rss_mb: float) -> str | None:
        """Why this outcome breaks the loader contract, or None when it keeps it."""
        where = f"{self.path}: "
        if self.status in ("crash", "hang"):
            return where + f"{self.status}: {self.message}\n{self.detail}"
        if self.status == "error" and not self.value_error:
            return where + f"raised {self.exc} (not a ValueError): {self.message}\n{self.detail}"
        if self.memory_error:
            return where + f"tried to allocate beyond the memory cap (MemoryError inside {self.exc or 'a successful load'}): {self.message}"
        if self.run_error:
            return where + f"loaded, but running it raised {self.run_error}"
        if self.seconds > max_seconds:
            return where + f"took {self.seconds:.1f} s (budget {max_seconds} s)"
        if self.peak_rss_mb > max_rss_mb:
            return where + f"peak resident memory grew by {self.peak_rss_mb:.0f} MB (budget {max_rss_mb} MB)"
        return None


class Sandbox:
    """A restartable child process that loads files under an address-space cap and a timeout."""

    def __init__(self, workdir: str | os.PathLike, *, mem_limit_mb: int = 1024, timeout: float = 30.0):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.marker = self.workdir / "code_execution_marker"
        self.mem_limit_mb, self.timeout = mem_limit_mb, timeout
        self._proc: subprocess.Popen | None = None
        self._buf = b""
        self.restarts = 0

    # ------------------------------------------------------------------ lifecycle
    def _start(self) -> None:
        env = {**os.environ, "STREAMLSTM_FUZZ_MARKER": str(self.marker), "PYTHONUNBUFFERED": "1"}
        self._stderr = open(self.workdir / "sandbox_stderr.log", "ab")
        self._proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), str(self.mem_limit_mb)],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
                                      cwd=self.workdir, env=env)
        self._buf = b""
        ready = self._reply(timeout=300.0)  # imports + JIT warm-up
        if ready is None or ready.get("ready") is not True:
            raise RuntimeError(f"sandbox child failed to start: {ready}\n{self._stderr_tail()}")

    def close(self) -> None:
        if self._proc is not None:
            try:
                self._proc.stdin.close()
                self._proc.wait(timeout=10)
            except Exception:
                self._proc.kill()
                self._proc.wait()
            self._proc = None
            self._stderr.close()

    def _kill(self) -> int:
        self._proc.kill()
        rc = self._proc.wait()
        self._proc = None
        self._stderr.close()
        self.restarts += 1
        return rc

    def __enter__(self) -> "Sandbox":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ requests
    def load(self, path: str | os.PathLike, format: str | None = None, **options) -> Outcome:
        """Load ``path`` in the child; never raises for anything the loader does."""
        if self._proc is None:
            self._start()
        req = {"path": str(Path(path).absolute()), "format": format, "options": options}
        t0 = time.perf_counter()
        try:
            self._proc.stdin.write((json.dumps(req) + "\n").encode())
            self._proc.stdin.flush()
        except BrokenPipeError:
            pass
        reply = self._reply(self.timeout)
        if reply is None:
            elapsed = time.perf_counter() - t0
            alive = self._proc.poll() is None
            if alive:
                self._kill()
                return Outcome(str(path), "hang", message=f"no answer after {elapsed:.0f} s",
                               seconds=elapsed, detail=self._stderr_tail())
            rc = self._proc.wait()
            self._proc = None
            self._stderr.close()
            self.restarts += 1
            return Outcome(str(path), "crash", message=f"child died with exit code {rc}", seconds=elapsed,
                           detail=self._stderr_tail())
        return Outcome(**reply)

    def _reply(self, timeout: float) -> dict | None:
        deadline = time.monotonic() + timeout
        fd = self._proc.stdout.fileno()
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while b"\n" not in self._buf:
                left = deadline - time.monotonic()
                if left <= 0 or not sel.select(left):
                    return None
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    return None
                self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        return json.loads(line)

    def _stderr_tail(self, n: int = 3000) -> str:
        try:
            return (self.workdir / "sandbox_stderr.log").read_bytes()[-n:].decode(errors="replace")
        except OSError:
            return ""


# ---------------------------------------------------------------------------------- child
def _status() -> dict[str, int]:
    out = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            k, _, v = line.partition(":")
            if k in ("VmSize", "VmHWM", "VmRSS"):
                out[k] = int(v.split()[0])  # kB
    return out


def _reset_peak() -> None:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:  # not allowed here: the peak then covers the child's whole life (an over-estimate)
        pass


def _chain(e: BaseException):
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        yield e
        e = e.__cause__ or e.__context__


def _serve(mem_limit_mb: int) -> None:
    import gc
    import resource
    import traceback

    import numpy as np

    import streamlstm as sl
    import streamlstm.converters.keras  # noqa: F401  (imported now: not counted in any load)
    import streamlstm.converters.onnx  # noqa: F401
    import streamlstm.converters.torch  # noqa: F401

    # numpy reports a failed array allocation with _ArrayMemoryError; loaders sometimes turn it into
    # another error and drop the chain, so count the failures where they happen.
    from numpy._core import _exceptions

    failed_allocs = []
    init = _exceptions._ArrayMemoryError.__init__

    def counting_init(self, *args, **kw):
        failed_allocs.append(args)
        init(self, *args, **kw)

    _exceptions._ArrayMemoryError.__init__ = counting_init

    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # anything a library prints goes to stderr, not into the protocol
    sys.stdout = sys.stderr
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    X = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)
    sl.load(SEED_FOR_WARMUP).run(X)  # JIT compile (or cache load) before the cap
    cap = _status()["VmSize"] * 1024 + mem_limit_mb * (1 << 20)
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    out.write(json.dumps({"ready": True}) + "\n")

    for line in sys.stdin:
        req = json.loads(line)
        rec = {"path": req["path"], "status": "ok"}
        gc.collect()
        before = _status()["VmRSS"]
        _reset_peak()
        t0 = time.perf_counter()
        model = None
        failed_allocs.clear()
        try:
            model = sl.load(req["path"], format=req["format"], **req["options"])
        except BaseException as e:  # noqa: BLE001  (SystemExit from a loader is a finding too)
            rec.update(status="error", exc=type(e).__name__, value_error=isinstance(e, ValueError),
                       message=str(e)[:500], memory_error=any(isinstance(c, MemoryError) for c in _chain(e)))
            if not isinstance(e, ValueError) or rec["memory_error"]:
                rec["detail"] = "".join(traceback.format_exception(e))[-4000:]
        rec["seconds"] = time.perf_counter() - t0
        if failed_allocs:
            rec["memory_error"] = True
            rec["message"] = rec.get("message", "") + f" [failed numpy allocation of {failed_allocs[0]}]"
        if model is not None and model.input_size > MAX_RUN_WIDTH:
            rec["extra"] = {"input_size": model.input_size, "not_run": "input too wide to run"}
        elif model is not None:
            try:
                rec["extra"] = {"input_size": model.input_size, "output_size": model.output_size}
                Xm = np.resize(X, (5, model.input_size)).astype(model.dtype)
                Y = model.run(Xm)
                if model.streamable:
                    s = model.session()
                    for x in Xm:
                        s.step(x)
                rec["extra"]["finite"] = bool(np.all(np.isfinite(Y)))
            except BaseException as e:  # noqa: BLE001
                rec["run_error"] = f"{type(e).__name__}: {str(e)[:300]}"
        rec["peak_rss_mb"] = (_status()["VmHWM"] - before) / 1024
        del model
        out.write(json.dumps(rec) + "\n")


if __name__ == "__main__":
    _serve(int(sys.argv[1]))
