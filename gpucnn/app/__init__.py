"""The experiment app built on the library: Hydra configs and runs (run, config, experiment,
trainer, checkpoint, resume, results), sweeps and their summaries (sweep, summarize), the report
(report, document), diagnostics, a trained run's evaluation, predictions and figures (evaluate,
predict, visualize), the benchmark with its PyTorch peer (bench, peer), and the layers'
gradient checks (check).

Hydra and OmegaConf stop here: the library (everything outside this package) takes plain
arguments. The commands are ``python -m gpucnn.run``, ``.bench``, ``.evaluate``, ``.predict``,
``.visualize``, ``.report``, ``.summarize`` and ``.check`` (``python -m gpucnn`` lists them).
"""

import argparse

try:  # run directories are locked with POSIX flocks, and runs stop cleanly on POSIX signals
    import fcntl  # noqa: F401
except ImportError:
    raise ImportError(
        "gpucnn's commands (python -m gpucnn.run and the others) need Linux or macOS: they lock "
        "run directories with POSIX file locks. On Windows, run them in WSL (Windows Subsystem "
        "for Linux); the library itself (from gpucnn import Model, Conv, ...) works as it is"
    ) from None


def command_parser(command: str, doc: str) -> argparse.ArgumentParser:
    """The argument parser of ``python -m gpucnn.<command>``, its --help the module's ``doc``
    as written (the examples one per line)."""
    return argparse.ArgumentParser(
        prog=f"python -m gpucnn.{command}",
        description=doc,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
