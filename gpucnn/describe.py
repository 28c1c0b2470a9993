"""``python -m gpucnn.describe``: the model a run would train and what it costs, without training.

The command's entry point; the code is in gpucnn.app.describe.
"""

from .app import exits
from .app.describe import main
from .app.run import check_command_line  # the run's overrides, checked as the run checks them

if __name__ == "__main__":
    exits.run_hydra(main, check_command_line)
