"""Adaloss: adaptive Gaussian heatmap targets for landmark localization.

Conventions (docs/design.md): points are (x, y[, z]), 0-based, pixel (row i, col j) centred at
x=j, y=i; sigma is in heatmap pixels; missing landmarks are NaN and count nowhere.
"""

from importlib.metadata import version

from adaloss import io, metrics
from adaloss.decode import decode_argmax, decode_peaks
from adaloss.losses import landmark_mse
from adaloss.schedules import Adaloss, FixedSigma, LinearDecay, SigmaSchedule
from adaloss.targets import render_heatmaps, rescale_points

# One source: the package metadata, from pyproject.toml's [project] version.
__version__ = version("adaloss")

__all__ = [
    "Adaloss",
    "FixedSigma",
    "LinearDecay",
    "SigmaSchedule",
    "decode_argmax",
    "decode_peaks",
    "io",
    "landmark_mse",
    "metrics",
    "render_heatmaps",
    "rescale_points",
]
