"""Loader fuzzing: hostile or damaged files end in a ValueError, in bounded time and memory.

Every load runs in the sandbox child (``loader_sandbox.py``): a segfault is a failed test, not
a dead test run; a hang is killed after ``TIMEOUT`` seconds; the child's address space is capped,
so an attempted multi-GB allocation is caught and reported, even when a loader turns the
MemoryError into another error. A load passes when it ends in a ValueError (ConversionError,
NetworkError) or loads a model that runs on finite frames to finite outputs, within
``MAX_SECONDS`` and ``MAX_RSS_MB`` of peak memory, and without touching the marker file that
every payload in the corpus writes.

Inputs: the committed corpus (``corpus/seeds``: one tiny valid model per format;
``corpus/malicious``: pickles calling os.system, Keras Lambda layers, ONNX external data
outside the folder, zip bombs), the generated hostile files of ``crafted_files.py``, and
hypothesis mutations of every seed (``mutations.py``: bytes, zip members, JSON configs and
headers, ONNX fields). ``scripts/reliability.py fuzz`` runs the same at scale.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, reject, settings
from hypothesis import strategies as st

from support import crafted_files
from support import mutations as M
import streamlstm as sl
from support.loader_sandbox import Sandbox

CORPUS = Path(__file__).resolve().parents[1] / "corpus"
MALICIOUS = sorted(p for p in (CORPUS / "malicious").iterdir())
TIMEOUT, MAX_SECONDS, MAX_RSS_MB = 60.0, 10.0, 256
EXAMPLES_PER_FORMAT = 25

# what the refusal of each committed sample must say
EXPECTED = {
    "pickle_system_zip.pt": "refusing to unpickle the global posix.system",
    "pickle_system_legacy.pt": "refusing to unpickle the global posix.system",
    "pickle_system_plain.pth": "refusing to unpickle the global posix.system",
    "pickle_exec_tensor.pt": "refusing to unpickle the global builtins.exec",
    "keras_lambda.keras": "Lambda layers hold Python code",
    "keras_lambda.h5": "Lambda layers hold Python code",
    "onnx_external_dotdot.onnx": "outside the model's folder",
    "onnx_external_absolute.onnx": "outside the model's folder",
    "bomb_weights.keras": "zip bomb",
    "bomb_storage.pt": "zip bomb",
    "bomb_pickle.pt": "zip bomb",
    "bomb_array.npz": "",
}


@pytest.fixture(scope="module")
def box(tmp_path_factory):
    with Sandbox(tmp_path_factory.mktemp("sandbox"), timeout=TIMEOUT) as b:
        yield b


def assert_safe(box: Sandbox, path, *, must_refuse: bool = False):
    out = box.load(path)
    problem = out.problem(max_seconds=MAX_SECONDS, max_rss_mb=MAX_RSS_MB)
    assert problem is None, problem
    assert not box.marker.exists(), f"{path}: code from the file ran (marker written)"
    if out.status == "ok":
        assert not must_refuse, f"{path}: loaded, but it must be refused"
        assert out.extra.get("finite", True), f"{path}: loaded, but finite frames give non-finite outputs"
    return out


# ---------------------------------------------------------------------------------- corpus
def test_every_committed_sample_is_listed():
    assert sorted(EXPECTED) == [p.name for p in MALICIOUS]
    total = sum(p.stat().st_size for p in CORPUS.rglob("*") if p.is_file() and p.suffix != ".py")
    assert all(p.stat().st_size < 100_000 for p in CORPUS.rglob("*") if p.is_file())
    assert total < 1_000_000


def test_seeds_load_and_agree(box):
    outs = {}
    for name in M.SEED_KINDS:
        assert box.load(CORPUS / "seeds" / name).status == "ok"
        model = sl.load(CORPUS / "seeds" / name)
        outs[name] = model.run(np.linspace(-1, 1, 12, dtype=np.float32).reshape(4, 3))
    torch_family = [outs[n] for n in ("tiny.npz", "tiny.onnx", "tiny_zip.pt", "tiny_legacy.pt", "tiny.safetensors")]
    for y in torch_family[1:]:
        np.testing.assert_allclose(y, torch_family[0], atol=1e-6)
    np.testing.assert_allclose(outs["tiny.h5"], outs["tiny.keras"], atol=1e-6)


@pytest.mark.parametrize("sample", MALICIOUS, ids=[p.name for p in MALICIOUS])
def test_malicious_sample_is_refused(box, sample, tmp_path):
    path = sample
    if sample.name == "onnx_external_dotdot.onnx":  # make the target exist, so only the check stops it
        (tmp_path / "model").mkdir()
        (tmp_path / "secret.bin").write_bytes(bytes(16))
        path = tmp_path / "model" / sample.name
        shutil.copy(sample, path)
    out = assert_safe(box, path, must_refuse=True)
    assert out.value_error and EXPECTED[sample.name] in out.message, out.message


PERMISSIVE_UNPICKLE = """
import io, pickle, sys, zipfile
class U(pickle.Unpickler):  # like pickle.load, with torch's own globals stubbed out
    def persistent_load(self, pid):
        return None
    def find_class(self, module, name):
        if module.startswith("torch") or module == "collections":
            return lambda *a, **k: None
        return super().find_class(module, name)
path = sys.argv[1]
if zipfile.is_zipfile(path):
    with zipfile.ZipFile(path) as zf:
        blob = zf.read(next(n for n in zf.namelist() if n.endswith("data.pkl")))
    U(io.BytesIO(blob)).load()
else:
    with open(path, "rb") as fh:
        while True:
            U(fh).load()  # the legacy container is a sequence of pickles
"""


@pytest.mark.parametrize("name", [p.name for p in MALICIOUS if p.name.startswith("pickle_")])
def test_pickle_payload_is_live(name, tmp_path):
    """Control: an unrestricted unpickler does run each payload, so the refusals above mean something."""
    marker = tmp_path / "marker"
    subprocess.run([sys.executable, "-c", PERMISSIVE_UNPICKLE, str(CORPUS / "malicious" / name)],
                   env={**os.environ, "STREAMLSTM_FUZZ_MARKER": str(marker)}, capture_output=True, timeout=60)
    assert marker.exists()


def test_keras_lambda_sample_holds_code():
    with zipfile.ZipFile(CORPUS / "malicious" / "keras_lambda.keras") as zf:
        cfg = zf.read("config.json").decode()
    assert '"class_name": "Lambda"' in cfg and '"__lambda__"' in cfg


# ---------------------------------------------------------------------------------- crafted files
@pytest.fixture(scope="module")
def crafted(tmp_path_factory):
    return {name: path for _, name, path in crafted_files.build_all(tmp_path_factory.mktemp("crafted"))}


@pytest.mark.parametrize("name", [name for _, name, _ in crafted_files.CASES])
def test_crafted_file(box, crafted, name):
    expected = crafted_files.REFUSAL.get(name)
    out = assert_safe(box, crafted[name], must_refuse=expected is not None)
    if expected is not None:
        assert out.value_error and expected in out.message, out.message


# ---------------------------------------------------------------------------------- mutations
POS = st.integers(0, 1 << 16)
BYTE_OP = st.one_of(
    st.tuples(st.just("flip"), POS, st.integers(1, 255)),
    st.tuples(st.just("truncate"), POS),
    st.tuples(st.just("insert"), POS, st.binary(min_size=1, max_size=16)),
    st.tuples(st.just("delete"), POS, st.integers(1, 64)),
    st.tuples(st.just("overwrite"), POS, st.sampled_from(M.INTERESTING)),
)
OPS = st.lists(BYTE_OP, min_size=1, max_size=4)
MUTATION = st.one_of(
    st.tuples(st.just("bytes"), OPS),
    st.tuples(st.just("member"), st.integers(0, 16), OPS),
    st.tuples(st.just("structured"), st.integers(0, 2 ** 32 - 1)),
    st.tuples(st.just("structured"), st.integers(0, 2 ** 32 - 1)),
)


def mutate(kind: str, data: bytes, mutation) -> bytes:
    level = mutation[0]
    if level == "member" and kind in M.ZIP_KINDS:
        return M.mutate_member(data, mutation[1], mutation[2])
    if level in ("bytes", "member"):
        return M.apply_ops(data, mutation[-1])
    try:
        return M.mutate_structured(kind, data, random.Random(mutation[1]))
    except Exception:  # the mutator could not apply this edit to this seed: not a loader test
        reject()


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("mutated")


@pytest.mark.parametrize("seed", list(M.SEED_KINDS))
@settings(max_examples=EXAMPLES_PER_FORMAT, deadline=None, derandomize=True, database=None,
          phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
@given(mutation=MUTATION)
def test_mutated_seed(box, fuzz_dir, seed, mutation):
    kind = M.SEED_KINDS[seed]
    data = mutate(kind, (CORPUS / "seeds" / seed).read_bytes(), mutation)
    path = fuzz_dir / f"mutated{Path(seed).suffix}"
    path.write_bytes(data)
    try:
        assert_safe(box, path)
    except AssertionError as e:
        keep = fuzz_dir / f"failing_{seed}"
        keep.write_bytes(data)
        raise AssertionError(f"mutation {mutation!r} of {seed} (kept as {keep}): {e}") from None
