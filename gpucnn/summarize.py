"""``python -m gpucnn.summarize <sweep dir> [...]``: summarise a sweep now (interrupted or running).

The command's entry point; the code is in gpucnn.app.summarize.
"""

import sys

from .app.signals import interruptible
from .app.summarize import main

if __name__ == "__main__":
    sys.exit(interruptible(main))
