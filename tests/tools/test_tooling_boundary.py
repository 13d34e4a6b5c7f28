"""The runtime never imports tooling: no module of ``streamlstm`` outside ``streamlstm/tools/``
(converters included) names ``streamlstm.tools``, and using the runtime loads none of it."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import streamlstm

PACKAGE = Path(streamlstm.__file__).resolve().parent


def _runtime_files() -> list[Path]:
    import streamlstm.converters as converters

    roots = [PACKAGE, Path(converters.__file__).resolve().parent]
    return [f for root in roots for f in root.rglob("*.py")
            if "tools" not in f.relative_to(PACKAGE if f.is_relative_to(PACKAGE) else root).parts
            and f.name != "__main__.py"]


def _imports(path: Path, package: str) -> set[str]:
    """Absolute names of every module ``path`` imports (relative imports resolved), lazy ones too."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
            names.add(base)
            names.update(f"{base}.{a.name}" for a in node.names)
    return names


def _package_of(path: Path) -> str:
    if path.is_relative_to(PACKAGE):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
    else:  # converters/ is installed as streamlstm.converters
        import streamlstm.converters as converters

        rel = Path("streamlstm", "converters") / path.relative_to(Path(converters.__file__).parent).with_suffix("")
    parts = rel.parts
    return ".".join(parts if parts[-1] == "__init__" else parts[:-1]).removesuffix(".__init__")


def test_no_runtime_module_imports_tools():
    files = _runtime_files()
    assert len(files) > 10
    offenders = {str(f): sorted(n for n in _imports(f, _package_of(f)) if n.startswith("streamlstm.tools"))
                 for f in files}
    assert {f: n for f, n in offenders.items() if n} == {}


def test_the_scan_sees_relative_and_lazy_imports_of_tools(tmp_path):
    # what the check above must catch, e.g. in streamlstm/model.py or streamlstm/kernels/engine.py
    probe = tmp_path / "probe.py"
    probe.write_text("from ..tools import zoo\ndef f():\n    from ..tools.cli import main\n")
    assert {"streamlstm.tools.zoo", "streamlstm.tools.cli.main"} <= _imports(probe, "streamlstm.kernels")
    probe.write_text("import streamlstm.tools.verify\n")
    assert "streamlstm.tools.verify" in _imports(probe, "streamlstm")


def test_using_the_runtime_loads_no_tools(tmp_path):
    code = ("import sys, numpy as np, streamlstm as sl\n"
            "net = sl.Network([sl.Dense(W=np.ones((2, 3)), b=np.zeros(2))])\n"
            "m = sl.Model(net); m.save(sys.argv[1]); m = sl.load(sys.argv[1])\n"
            "print(sorted(n for n in sys.modules if n.startswith('streamlstm.tools')))\n")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "m.npz")], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_bench_scripts_use_only_the_public_api_and_tools():
    bench = Path(__file__).resolve().parents[2] / "bench"
    public = set(streamlstm.__all__)
    optional_public = ("streamlstm.cluster",)  # the [ray] extra's public module
    bad = {}
    for f in sorted(bench.glob("*.py")):
        for name in _imports(f, "bench"):
            if not name.startswith("streamlstm.") or name.startswith(("streamlstm.tools", *optional_public)):
                continue
            if name.removeprefix("streamlstm.") not in public:
                bad.setdefault(f.name, []).append(name)
    assert bad == {}
