"""Reading image files into float arrays, shared by the real-format loaders.

Arrays are (H, W, C) float32 in [0, 1] as scikit-image reads them; the loaders transpose to the
dataset's (N, C, H, W) once they have stacked a split.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from skimage import io as skio
from skimage import transform, util

FloatImage = NDArray[np.float32]


def read_image(path: Path) -> FloatImage:
    """(H, W, C) float32 in [0, 1] from an image file; C = 1 (grey) or 3 (colour).

    An alpha channel is dropped: the frames are opaque photographs.
    """
    try:
        raw = skio.imread(path)
    except (OSError, ValueError, SyntaxError) as error:
        # the readers' messages can span lines (imageio lists plugins); the first says why
        why = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise ValueError(
            f"{path}: cannot be read as an image ({why}); replace it with a PNG or JPEG file"
        ) from error
    image = util.img_as_float32(raw)
    if image.ndim == 2:
        image = image[:, :, None]
    if image.shape[-1] in (2, 4):  # grey + alpha or RGB + alpha
        image = image[:, :, :-1]
    return np.ascontiguousarray(image, dtype=np.float32)


def to_channels(image: FloatImage, channels: int) -> FloatImage:
    """(H, W, C) -> (H, W, channels): grey repeated on three channels, colour averaged to grey."""
    if image.shape[-1] == channels:
        return image
    if channels == 3:
        return np.repeat(image, 3, axis=-1)
    return image.mean(axis=-1, keepdims=True, dtype=np.float32)


def resize_image(image: FloatImage, size: tuple[int, int]) -> FloatImage:
    """(H, W, C) -> (size[0], size[1], C), bilinear, anti-aliased when shrinking.

    The whole frame maps onto the whole output, so points follow docs/design.md's
    `u = (x + 0.5) * W_out / W_in - 0.5`.
    """
    if image.shape[:2] == tuple(size):
        return image
    shrinking = size[0] < image.shape[0] or size[1] < image.shape[1]
    resized = transform.resize(
        image, (*size, image.shape[2]), order=1, anti_aliasing=shrinking, preserve_range=True
    )
    return np.clip(resized, 0.0, 1.0).astype(np.float32)
