"""The experiment app built on the library: Hydra configs and runs (run, config, experiment,
trainer, checkpoint, resume, results), sweeps and their summaries (sweep, summarize), the report
(report, document), diagnostics, and the benchmark with its PyTorch peer (bench, peer).

Hydra and OmegaConf stop here: the library (everything outside this package) takes plain
arguments. The commands are ``python -m gpucnn.run``, ``.bench``, ``.evaluate``, ``.predict``,
``.report`` and ``.summarize`` (``python -m gpucnn`` lists them).
"""
