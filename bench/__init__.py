"""The Adaloss benchmark harness: grids of training cells tracked in MLflow."""

__version__ = "0.1.0"
