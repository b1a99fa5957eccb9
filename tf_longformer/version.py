"""The package version (a leaf module: setup.cfg reads it without importing TensorFlow)."""

__version__ = "0.1.0"
