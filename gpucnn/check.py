"""``python -m gpucnn.check``: each layer's backward checked against numerical gradients.

The command's entry point; the code is in gpucnn.app.check.
"""

import sys

from .app.check import main
from .app.signals import interruptible

if __name__ == "__main__":
    sys.exit(interruptible(main))
