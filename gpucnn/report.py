"""``python -m gpucnn.report <run or sweep dirs...>``: the lab's three questions, answered.

The command's entry point; the code is in gpucnn.app.report.
"""

import sys

from .app.report import main

if __name__ == "__main__":
    sys.exit(main())
