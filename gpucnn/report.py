"""``python -m gpucnn.report <run or sweep dirs...>``: the lab's three questions, answered.

The command's entry point; the code is in gpucnn.app.report.
"""

import sys

from .app.report import main
from .app.signals import interruptible

if __name__ == "__main__":
    sys.exit(interruptible(main))
