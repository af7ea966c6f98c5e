"""The size profiles every task defines, in one place.

smoke: a few dozen images and tiny models, for tests; quick: 64 px data and small models that train
a grid on two CPU cores; paper: the paper's sizes, epochs and counts, for a GPU.
"""

PROFILES = ("smoke", "quick", "paper")
