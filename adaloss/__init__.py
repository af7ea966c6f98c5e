"""Adaloss: adaptive Gaussian heatmap targets for landmark localization."""
