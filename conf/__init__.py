"""The Hydra configs, installed as the package gpucnn.conf (see pyproject.toml)."""
