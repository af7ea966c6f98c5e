"""The Adaloss benchmark harness: grids of training cells tracked in MLflow."""

from importlib.metadata import version

# One source: the package metadata, from pyproject.toml's [project] version.
__version__ = version("adaloss")
