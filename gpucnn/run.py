"""``python -m gpucnn.run``: train one model, or sweep many with ``--multirun``.

The command's entry point; the code is in gpucnn.app.run.
"""

import sys

from .app import exits
from .app.run import main, missing_extra

if __name__ == "__main__":
    if why := missing_extra(sys.argv[1:]):
        print(f"error: {why}", file=sys.stderr)
        sys.exit(exits.INVALID_CONFIG)
    exits.run_hydra(main)
