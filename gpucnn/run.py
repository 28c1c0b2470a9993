"""``python -m gpucnn.run``: train one model, or sweep many with ``--multirun``.

The command's entry point; the code is in gpucnn.app.run.
"""

from .app import exits
from .app.run import check_command_line, main

if __name__ == "__main__":
    exits.run_hydra(main, check_command_line)
