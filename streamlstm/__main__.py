"""``python -m streamlstm``: the ``streamlstm`` command line (see ``streamlstm.tools.cli``)."""

import sys

from streamlstm.tools.cli import main

if __name__ == "__main__":
    sys.exit(main())
