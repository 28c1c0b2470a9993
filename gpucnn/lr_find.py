"""``python -m gpucnn.lr_find``: the learning-rate range test, the rates worth a sweep in one run.

The command's entry point; the code is in gpucnn.app.lr_find.
"""

from .app import exits
from .app.lr_find import check_command_line, main

if __name__ == "__main__":
    exits.run_hydra(main, check_command_line)
