"""``python -m gpucnn.visualize RUN_DIR [IMAGE]``: a trained run's filters and feature maps.

The command's entry point; the code is in gpucnn.app.visualize.
"""

import sys

from .app.signals import interruptible
from .app.visualize import main

if __name__ == "__main__":
    sys.exit(interruptible(main))
