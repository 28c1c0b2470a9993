"""``python -m gpucnn.predict RUN_DIR IMAGES... [--json]``: classify images with a trained run.

The command's entry point; the code is in gpucnn.app.predict.
"""

import sys

from .app.predict import main
from .app.signals import interruptible

if __name__ == "__main__":
    sys.exit(interruptible(main))
