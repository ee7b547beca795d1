"""The package's version, in a module of its own: setup.cfg reads it without importing actorsim."""

__version__ = "0.1.0"
