"""`--update`: re-record tests/regression/expected.json instead of checking against it."""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update",
        action="store_true",
        help="re-record expected.json: run every regression grid with RECORD_SEEDS seeds",
    )
