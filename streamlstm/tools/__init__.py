"""Tooling around the runtime: the benchmark engine and its peer adapters, reports, verify, the
zoo and the ``streamlstm`` command line.

The runtime (everything in ``streamlstm`` outside this package) never imports it; these modules
use the runtime through its public API.
"""
