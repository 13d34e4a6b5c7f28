"""The standard benchmark zoo; it lives in the package (``streamlstm.tools.zoo``) so that the
``streamlstm bench`` command works from a plain install. Re-exported here for the bench scripts."""

from streamlstm.tools.zoo import NAMES, SPECS, zoo_network

__all__ = ["NAMES", "SPECS", "zoo_network"]
