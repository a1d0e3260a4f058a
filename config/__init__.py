"""agent.yaml: loaded with positions, validated once, resolved; or every problem in it.

`config.loader.load_config(path)` returns a LoadedConfig or raises ConfigInvalid,
whose `problems` read `file:line:col: field: message`. The package imports
nothing itself: config.base, the vocabulary every protocol's settings are
written in, must be importable without the models, which are built from those
settings (drivers/registry.py).
"""
