"""docs/RESULTS.md stays true to the reports it quotes.

Every table row with a number in RESULTS.md must appear verbatim in the summary.md that a
`bench report --grid G ... --out docs/results/G` command written in the document produced, or in
the file that a `python tools/confirm_reading.py ... > docs/results/F` command written there
produced, so no number is typed by hand or left behind by a re-run; every figure it shows must
exist; the README must link it.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "docs" / "RESULTS.md"
REPORT_COMMAND = re.compile(r"bench report --grid (\S+)[^\n`]*?--out (docs/results/[^\s`]+)")
CONFIRMATION_COMMAND = re.compile(
    r"python tools/confirm_reading\.py[^\n`>]*> (docs/results/[^\s`]+)"
)


def report_folders(text: str) -> list[tuple[str, Path]]:
    """(grid, --out folder) of each `bench report` command in the text."""
    return [(grid, ROOT / out) for grid, out in REPORT_COMMAND.findall(text)]


def confirmation_files(text: str) -> list[Path]:
    """The files that `python tools/confirm_reading.py ... > FILE` commands in the text wrote."""
    return [ROOT / out for out in CONFIRMATION_COMMAND.findall(text)]


def numeric_table_rows(text: str) -> list[str]:
    """Markdown table rows holding a digit, other than header separators."""
    return [
        line.strip()
        for line in text.splitlines()
        if line.lstrip().startswith("|") and re.search(r"\d", line) and "---" not in line
    ]


def test_readme_links_the_results() -> None:
    assert "(docs/RESULTS.md)" in (ROOT / "README.md").read_text(encoding="utf-8")
    assert RESULTS.exists()


def test_every_table_row_comes_from_a_written_report() -> None:
    text = RESULTS.read_text(encoding="utf-8")
    folders = report_folders(text)
    assert folders, "RESULTS.md names no `bench report --grid G --out docs/results/G` command"
    quoted: set[str] = set()
    for grid, folder in folders:
        summary = folder / "summary.md"
        assert summary.exists(), f"{summary}: missing; run the report command for {grid}"
        quoted |= {line.strip() for line in summary.read_text(encoding="utf-8").splitlines()}
    for written in confirmation_files(text):
        assert written.exists(), f"{written}: missing; run the confirm_reading.py command"
        quoted |= {line.strip() for line in written.read_text(encoding="utf-8").splitlines()}
    stray = [row for row in numeric_table_rows(text) if row not in quoted]
    assert not stray, "RESULTS.md rows found in no report summary:\n" + "\n".join(stray)


def test_every_figure_exists() -> None:
    text = RESULTS.read_text(encoding="utf-8")
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert images
    missing = [image for image in images if not (RESULTS.parent / image).is_file()]
    assert not missing, f"RESULTS.md shows missing figures: {missing}"


def test_the_helpers_find_rows_and_commands() -> None:
    row = "| adaloss | 0.001 | 3 | 5.00 ± 1.00 |"
    assert numeric_table_rows(f"| method | lr |\n|---|---|\n{row}\n| a | b |") == [row]
    found = report_folders("`bench report --grid cathdet --profile quick --out docs/results/c`")
    assert found == [("cathdet", ROOT / "docs/results/c")]
    command = "    python tools/confirm_reading.py --tracking-uri U > docs/results/conf.md\n"
    assert confirmation_files(command) == [ROOT / "docs/results/conf.md"]
    assert confirmation_files("python tools/confirm_reading.py --record R\n") == []
