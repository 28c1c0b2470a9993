"""``python -m gpucnn.run``: train one model, or sweep many with ``--multirun``.

The command's entry point; the code is in gpucnn.app.run.
"""

from .app.run import main

if __name__ == "__main__":
    main()
