"""The version of zoo, in a module of its own so that any zoo module can read it without a cycle."""

__version__ = "0.1.0"
