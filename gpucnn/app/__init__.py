"""The experiment app built on the library: Hydra configs and runs (run, config, experiment,
trainer, checkpoint, resume, results), sweeps and their summaries (sweep, summarize), the report
(report, document), diagnostics, a trained run's evaluation, predictions and figures (evaluate,
predict, visualize), and the benchmark with its PyTorch peer (bench, peer).

Hydra and OmegaConf stop here: the library (everything outside this package) takes plain
arguments. The commands are ``python -m gpucnn.run``, ``.bench``, ``.evaluate``, ``.predict``,
``.visualize``, ``.report`` and ``.summarize`` (``python -m gpucnn`` lists them).
"""

import argparse


def command_parser(command: str, doc: str) -> argparse.ArgumentParser:
    """The argument parser of ``python -m gpucnn.<command>``, its --help the module's ``doc``
    as written (the examples one per line)."""
    return argparse.ArgumentParser(
        prog=f"python -m gpucnn.{command}",
        description=doc,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
