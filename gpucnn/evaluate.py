"""``python -m gpucnn.evaluate RUN_DIR [overrides...]``: a trained run's test errors.

The command's entry point; the code is in gpucnn.app.evaluate.
"""

import sys

from .app.evaluate import main
from .app.signals import interruptible

if __name__ == "__main__":
    sys.exit(interruptible(main))
