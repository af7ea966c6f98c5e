"""Reading and writing landmark files in the iBUG `.pts` format (300-W).

    version: 1
    n_points: 68
    {
    x y
    ...
    }

Coordinates are 1-based on disk and 0-based in memory (docs/design.md's convention): `read_pts`
subtracts 1 and `write_pts` adds 1. Surrounding spaces and tabs, CRLF line ends, a UTF-8 byte
order mark and blank lines after the closing brace are tolerated.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike, NDArray


class PtsFormatError(ValueError):
    """A malformed `.pts` file; the message names the file, the line and what was expected."""

    def __init__(self, path: str | os.PathLike[str], line: int, expected: str, got: str):
        self.path = str(path)
        self.line = line
        super().__init__(f"{self.path}, line {line}: expected {expected}, got {got}")


def _shown(line: str | None) -> str:
    return "end of file" if line is None else repr(line)


def _header_value(path: Path, lineno: int, line: str | None, key: str) -> str:
    """The value of a `key: value` header line."""
    expected = f'"{key}: ..."'
    if line is None:
        raise PtsFormatError(path, lineno, expected, _shown(line))
    name, colon, value = line.partition(":")
    if not colon or name.strip() != key:
        raise PtsFormatError(path, lineno, expected, repr(line))
    return value.strip()


def _point(path: Path, lineno: int, line: str, index: int, n_points: int) -> tuple[float, float]:
    fields = line.split()
    expected = f'point {index + 1} of {n_points} as "x y"'
    if len(fields) != 2:
        raise PtsFormatError(path, lineno, expected, repr(line))
    try:
        x, y = float(fields[0]), float(fields[1])
    except ValueError:
        raise PtsFormatError(path, lineno, f"{expected} with numeric x and y", repr(line)) from None
    if not (math.isfinite(x) and math.isfinite(y)):
        raise PtsFormatError(path, lineno, f"{expected} with finite x and y", repr(line))
    return x, y


def read_pts(path: str | os.PathLike[str]) -> NDArray[np.float64]:
    """Read a `.pts` file -> (N, 2) float64 points, 0-based (x, y).

    Raises PtsFormatError (a ValueError) naming the file and line on any deviation from the
    format, including an `n_points` that disagrees with the number of point lines.
    """
    file = Path(path)
    lines = [line.strip() for line in file.read_text(encoding="utf-8-sig").splitlines()]
    while lines and not lines[-1]:
        lines.pop()

    def line_at(lineno: int) -> str | None:
        return lines[lineno - 1] if lineno <= len(lines) else None

    version = _header_value(file, 1, line_at(1), "version")
    if version != "1":
        raise PtsFormatError(file, 1, '"version: 1"', repr(lines[0]))
    count_text = _header_value(file, 2, line_at(2), "n_points")
    if not (count_text.isascii() and count_text.isdigit()):
        raise PtsFormatError(file, 2, '"n_points: N" with N a whole number >= 0', repr(lines[1]))
    n_points = int(count_text)
    if line_at(3) != "{":
        raise PtsFormatError(file, 3, '"{"', _shown(line_at(3)))
    points: list[tuple[float, float]] = []
    for index in range(n_points):
        lineno = 4 + index
        line = line_at(lineno)
        if line is None or line == "}":
            raise PtsFormatError(
                file,
                lineno,
                f"point {index + 1} of {n_points} (n_points: {n_points})",
                _shown(line),
            )
        points.append(_point(file, lineno, line, index, n_points))
    closing = 4 + n_points
    if line_at(closing) != "}":
        expected = f'"}}" after {n_points} points (n_points: {n_points})'
        raise PtsFormatError(file, closing, expected, _shown(line_at(closing)))
    if len(lines) > closing:
        raise PtsFormatError(file, closing + 1, 'nothing after "}"', repr(lines[closing]))
    return np.asarray(points, dtype=np.float64).reshape(n_points, 2) - 1.0


def write_pts(path: str | os.PathLike[str], points: ArrayLike) -> None:
    """Write (N, 2) 0-based (x, y) points to a `.pts` file (1-based on disk).

    Values are written with Python's shortest round-trip repr, so `read_pts(write_pts(p))`
    equals p up to the rounding of the +1/-1 shift (a few ulp). The format has no marker for a
    missing point, so NaN or infinite coordinates raise ValueError.
    """
    array = np.asarray(points, dtype=np.float64)
    if array.ndim != 2 or array.shape[1] != 2:
        raise ValueError(f"write_pts: points must be (N, 2), got shape {array.shape}")
    bad = np.flatnonzero(~np.isfinite(array).all(axis=1))
    if bad.size:
        raise ValueError(
            f"write_pts: point {int(bad[0])} is not finite ({array[bad[0]].tolist()}); "
            ".pts files cannot store missing landmarks"
        )
    on_disk = array + 1.0
    body = "".join(f"{float(x)!r} {float(y)!r}\n" for x, y in on_disk)
    text = f"version: 1\nn_points: {len(array)}\n{{\n{body}}}\n"
    Path(path).write_text(text, encoding="utf-8")
