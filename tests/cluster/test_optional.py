"""The cluster is an optional extra: the core package never imports it or Ray, and without Ray
importing it says which extra to install."""

import subprocess
import sys


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)


def test_core_package_does_not_import_the_cluster_or_ray():
    r = _run("import sys, streamlstm, streamlstm.pool, streamlstm.model\n"
             "bad = [m for m in sys.modules if m == 'ray' or m.startswith(('ray.', 'streamlstm.cluster'))]\n"
             "assert not bad, bad")
    assert r.returncode == 0, r.stderr


def test_without_ray_the_import_error_names_the_extra():
    for module in ("streamlstm.cluster", "streamlstm.cluster_web"):
        r = _run(f"import sys; sys.modules['ray'] = None\nimport {module}")
        assert r.returncode != 0
        assert 'pip install "streamlstm[ray]"' in r.stderr, r.stderr
