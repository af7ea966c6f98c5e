"""`.pts` reading and writing: round trip, tolerated variations, and one test per error."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adaloss.io import PtsFormatError, read_pts, write_pts


def write_text(path: Path, text: str) -> Path:
    path.write_bytes(text.encode())
    return path


def test_read_hand_file_subtracts_one(tmp_path: Path) -> None:
    path = write_text(tmp_path / "a.pts", "version: 1\nn_points: 3\n{\n1 1\n10.5 2\n3 4.25\n}\n")
    expected = np.array([[0.0, 0.0], [9.5, 1.0], [2.0, 3.25]])
    np.testing.assert_array_equal(read_pts(path), expected)


def test_read_tolerates_crlf_tabs_trailing_spaces_and_blank_lines(tmp_path: Path) -> None:
    text = "version: 1  \r\nn_points:\t2\r\n{ \r\n\t1.0\t2.0  \r\n 3   4\t\r\n}\t\r\n\r\n  \r\n"
    path = write_text(tmp_path / "b.pts", text)
    np.testing.assert_array_equal(read_pts(path), [[0.0, 1.0], [2.0, 3.0]])


def test_write_adds_one_and_uses_the_format(tmp_path: Path) -> None:
    path = tmp_path / "c.pts"
    write_pts(path, np.array([[0.0, 1.5], [9.0, 2.0]]))
    lines = path.read_text().splitlines()
    assert lines[:3] == ["version: 1", "n_points: 2", "{"]
    assert [tuple(map(float, line.split())) for line in lines[3:5]] == [(1.0, 2.5), (10.0, 3.0)]
    assert lines[5:] == ["}"]


def test_zero_points_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "empty.pts"
    write_pts(path, np.zeros((0, 2)))
    assert read_pts(path).shape == (0, 2)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(st.floats(-1e4, 1e4), st.floats(-1e4, 1e4)),
        max_size=70,
    )
)
def test_round_trip(
    tmp_path_factory: pytest.TempPathFactory, rows: list[tuple[float, float]]
) -> None:
    points = np.array(rows, dtype=np.float64).reshape(-1, 2)
    path = tmp_path_factory.mktemp("pts") / "r.pts"
    write_pts(path, points)
    # The only loss is the rounding of (x + 1) - 1: at most one ulp of |x| + 1.
    np.testing.assert_allclose(read_pts(path), points, rtol=0, atol=4e-12)


def test_write_rejects_bad_points(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        write_pts(tmp_path / "x.pts", np.zeros((3, 3)))
    with pytest.raises(ValueError, match="point 1 is not finite"):
        write_pts(tmp_path / "x.pts", [[0.0, 0.0], [math.nan, 1.0]])


GOOD_POINTS = "1 2\n3 4\n"


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("", 1, 'expected "version: ...", got end of file'),
        (
            "n_points: 2\n{\n" + GOOD_POINTS + "}\n",
            1,
            "expected \"version: ...\", got 'n_points: 2'",
        ),
        ("version: 2\nn_points: 2\n{\n" + GOOD_POINTS + "}\n", 1, 'expected "version: 1"'),
        ("version: 1\n{\n" + GOOD_POINTS + "}\n", 2, "expected \"n_points: ...\", got '{'"),
        ("version: 1\nn_points: two\n{\n" + GOOD_POINTS + "}\n", 2, "whole number"),
        ("version: 1\nn_points: -2\n{\n" + GOOD_POINTS + "}\n", 2, "whole number"),
        ("version: 1\nn_points: 2\n" + GOOD_POINTS + "}\n", 3, "expected \"{\", got '1 2'"),
        ("version: 1\nn_points: 2\n{\n" + GOOD_POINTS, 6, 'expected "}" after 2 points'),
        ("version: 1\nn_points: 2\n{\n1 2\n3 x\n}\n", 5, "point 2 of 2"),
        ("version: 1\nn_points: 2\n{\n1 2\n3\n}\n", 5, "expected point 2 of 2 as \"x y\", got '3'"),
        ("version: 1\nn_points: 2\n{\n1 2\n3 4 5\n}\n", 5, "got '3 4 5'"),
        ("version: 1\nn_points: 2\n{\n1 2\nnan 4\n}\n", 5, "finite"),
        ("version: 1\nn_points: 3\n{\n" + GOOD_POINTS + "}\n", 6, "point 3 of 3 (n_points: 3)"),
        ("version: 1\nn_points: 1\n{\n" + GOOD_POINTS + "}\n", 5, "after 1 points (n_points: 1)"),
        ("version: 1\nn_points: 2\n{\n" + GOOD_POINTS + "}\nextra\n", 7, 'nothing after "}"'),
    ],
    ids=[
        "empty-file",
        "missing-version",
        "wrong-version",
        "missing-count",
        "non-numeric-count",
        "negative-count",
        "missing-open-brace",
        "missing-close-brace",
        "non-numeric-coordinate",
        "one-coordinate",
        "three-coordinates",
        "nan-coordinate",
        "fewer-lines-than-count",
        "more-lines-than-count",
        "text-after-close-brace",
    ],
)
def test_malformed_file_names_file_and_line(
    tmp_path: Path, text: str, line: int, fragment: str
) -> None:
    path = write_text(tmp_path / "ibug_a.pts", text)
    with pytest.raises(PtsFormatError) as caught:
        read_pts(path)
    message = str(caught.value)
    assert message.startswith(f"{path}, line {line}: expected ")
    assert fragment in message
    assert caught.value.line == line
    assert isinstance(caught.value, ValueError)
