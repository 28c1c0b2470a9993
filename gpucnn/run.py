"""``python -m gpucnn.run``: train one model, or sweep many with ``--multirun``.

The command's entry point; the code is in gpucnn.app.run.
"""

from .app import exits
from .app.run import main, missing_extra

if __name__ == "__main__":
    exits.run_hydra(main, missing_extra)
