"""``python -m gpucnn.evaluate RUN_DIR [overrides...]``: a trained run's test errors.

The command's entry point; the code is in gpucnn.app.evaluate.
"""

import sys

from .app.evaluate import main

if __name__ == "__main__":
    sys.exit(main())
