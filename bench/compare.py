"""Side-by-side latency run on the zoo: ``python bench/compare.py [streamlstm bench options]``.

The engine lives in the package (``streamlstm.tools.benchmark``, adapters in ``streamlstm.tools.peers``) so
that ``streamlstm bench`` works from a plain install; this script is the same command with the
results written to ``bench/results/bench.json`` and ``bench.png`` unless ``--json`` / ``--plot``
are given.
"""

from __future__ import annotations

import sys
from pathlib import Path

from streamlstm.tools.cli import main

if __name__ == "__main__":
    args = sys.argv[1:]
    results = Path(__file__).resolve().parent / "results"
    if not any(a == "--json" or a.startswith("--json=") for a in args):
        args += ["--json", str(results / "bench.json")]
    if not any(a == "--plot" or a.startswith("--plot=") for a in args):
        args += ["--plot", str(results / "bench.png")]
    sys.exit(main(["bench", *args]))
