"""``python -m gpucnn.bench``: gpucnn and PyTorch side by side, in one run, on the same device.

The command's entry point; the code is in gpucnn.app.bench.
"""

from .app import exits
from .app.bench import check_command_line, main

if __name__ == "__main__":
    exits.run_hydra(main, check_command_line)
