"""gpucnn's Hydra plugins: Hydra instantiates a plugin only from the hydra_plugins package.

The modules' names start with an underscore so that Hydra's scan of the package passes over
them: they subclass plugins of the optional sweep extra, and importing them without it would
warn on every run. gpucnn.app.config.register() registers them when the extra is there.
"""
