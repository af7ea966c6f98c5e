"""`report.html`: a grid's report as one self-contained page a reviewer opens offline.

The page holds everything inline: styles, a few lines of script (sortable tables), and every
figure of the report folder as an embedded PNG, so it can be mailed or attached and opens with no
network. It opens with the verdict (each paired comparison in one sentence), then the summary
that `bench report` writes as Markdown (tables, the training-regime diagnostic and its warning,
the comparison, per landmark), every figure and overlay, one row per cell run (linked to its run
in the MLflow UI when `mlflow_url` is given), and the command and store that produced it.

The Markdown it converts is the report's own (`bench.track.report.markdown`): headings, pipe
tables, paragraphs and bullets with `code`, **bold** and images, nothing else.
"""

from __future__ import annotations

import base64
import html
import math
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bench.track.report import Report

STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1100px; padding: 0 1em;
  color: #222; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; margin-top: 1.6em; }
table { border-collapse: collapse; margin: 0.6em 0 1.2em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.55em; text-align: left; }
th { background: #f0f0f0; cursor: pointer; user-select: none; }
th.sorted-up::after { content: " \\25B2"; } th.sorted-down::after { content: " \\25BC"; }
.verdict { background: #f6f8fa; border-left: 4px solid #555; padding: 0.6em 1em; }
.verdict li { margin: 0.3em 0; } .worse { color: #a00; } .better { color: #070; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { font-size: 0.85em; color: #555; } code { background: #f3f3f3; padding: 0 0.2em; }
"""
# Sort a table by the clicked column (numbers as numbers), and record on <body> how many images
# decoded, so a headless browser's DOM says whether every figure loaded.
SCRIPT = """
document.querySelectorAll("table").forEach(function (table) {
  table.querySelectorAll("th").forEach(function (th, column) {
    th.addEventListener("click", function () {
      var body = table.tBodies[0], rows = Array.from(body.rows);
      var up = !th.classList.contains("sorted-up");
      table.querySelectorAll("th").forEach(function (h) { h.className = ""; });
      th.className = up ? "sorted-up" : "sorted-down";
      function key(row) {
        var text = row.cells[column].textContent.trim(), number = parseFloat(text);
        return isNaN(number) ? text : number;
      }
      rows.sort(function (a, b) {
        var x = key(a), y = key(b), order = x < y ? -1 : x > y ? 1 : 0;
        return up ? order : -order;
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
});
window.addEventListener("load", function () {
  var images = Array.from(document.images);
  document.body.dataset.images = images.length;
  document.body.dataset.loaded = images.filter(function (i) {
    return i.complete && i.naturalWidth > 0;
  }).length;
});
"""


def write_html(
    report: Report,
    folder: Path,
    *,
    command: str = "",
    mlflow_url: str | None = None,
    summary: str | None = None,
) -> Path:
    """Write `folder/report.html` from the report and the figures already in `folder`;
    `summary` is the report's Markdown (default: `bench.track.report.markdown(report)`)."""
    from bench.track.report import markdown

    text = summary if summary is not None else markdown(report)
    title, _, rest = text.partition("\n")
    body = [
        markdown_html(title, folder),
        *verdict_html(report.comparison),
        markdown_html(rest, folder),
        *figures_html(folder, embedded=_images_in(text)),
        *runs_html(report, mlflow_url),
        "<h2>How this page was made</h2>",
        f"<p>Command: <code>{html.escape(command or 'bench report')}</code><br>"
        f"Store: <code>{html.escape(report.uri)}</code><br>"
        f"Written {time.strftime('%Y-%m-%d %H:%M')}.</p>",
    ]
    page = "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f"<title>{html.escape(report.grid)}: bench report</title>",
            f"<style>{STYLE}</style></head><body>",
            *body,
            f"<script>{SCRIPT}</script>",
            "</body></html>",
        ]
    )
    path = folder / "report.html"
    path.write_text(page, encoding="utf-8")
    return path


def verdict_html(comparison: Any) -> list[str]:
    """Each paired comparison as a sentence: method, reference, difference, p values."""
    if comparison.empty:
        return [
            '<div class="verdict"><h2>Verdict</h2><p>No comparison: the grid has no adaptive '
            "method to pair with a fixed sigma (and no --reference was named).</p></div>"
        ]
    items = []
    for row in comparison.to_dict(orient="records"):
        verdict = str(row["verdict"])
        difference = row["difference_mean"]
        spread = row["difference_std"]
        numbers = (
            f"{_number(row['method_mean'])} against {_number(row['reference_mean'])} "
            f"<code>{html.escape(str(row['metric']))}</code>, difference {_signed(difference)}"
            + (f" &plusmn; {_number(spread)}" if _finite(spread) else "")
            + f" over {row['pairs']} paired seeds; paired t-test p = {_number(row['p'], 3)}, "
            f"Wilcoxon p = {_number(row['wilcoxon_p'], 3)}"
        )
        css = verdict if verdict in ("better", "worse") else ""
        items.append(
            f"<li><b>{html.escape(str(row['method']))}</b> against "
            f"<b>{html.escape(str(row['reference']))}</b> at lr {row['lr']:g}: "
            f'<span class="{css}">{html.escape(verdict)}</span> ({numbers}).</li>'
        )
    return ['<div class="verdict"><h2>Verdict</h2><ul>', *items, "</ul></div>"]


def markdown_html(text: str, folder: Path) -> str:
    """The report's Markdown subset as HTML; images are embedded from `folder`."""
    out: list[str] = []
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        if line.startswith("|"):
            block = []
            while index < len(lines) and lines[index].startswith("|"):
                block.append(lines[index])
                index += 1
            out.append(_table(block))
            continue
        heading = re.match(r"(#{1,3}) (.*)", line)
        if heading:
            level = len(heading.group(1))
            out.append(f"<h{level}>{_inline(heading.group(2), folder)}</h{level}>")
        elif line.startswith("- "):
            items = []
            while index < len(lines) and lines[index].startswith(("- ", "  ")):
                if lines[index].startswith("- "):
                    items.append(lines[index][2:])
                else:
                    items[-1] += " " + lines[index].strip()
                index += 1
            out.append("<ul>" + "".join(f"<li>{_inline(i, folder)}</li>" for i in items) + "</ul>")
            continue
        elif line.strip():
            out.append(f"<p>{_inline(line, folder)}</p>")
        index += 1
    return "\n".join(out)


def figures_html(folder: Path, embedded: set[str]) -> list[str]:
    """Every PNG under figures/ and overlays/ that the Markdown did not show already."""
    paths = [
        path
        for sub in ("figures", "overlays")
        for path in sorted((folder / sub).glob("*.png"))
        if str(path.relative_to(folder)) not in embedded
    ]
    if not paths:
        return []
    parts = ["<h2>More figures</h2>"]
    for path in paths:
        caption = path.stem.replace("_", " ")
        parts.append(
            f'<figure><img alt="{html.escape(caption)}" src="{_data_uri(path)}">'
            f"<figcaption>{html.escape(str(path.relative_to(folder)))}</figcaption></figure>"
        )
    return parts


def runs_html(report: Report, mlflow_url: str | None) -> list[str]:
    """One row per cell run: method, lr, seed, outcome, headline metric and its run (linked to
    the MLflow UI when `mlflow_url` is given)."""
    records = report.records
    if records.empty:
        return []
    metric = report.headline_metric
    experiment_id = None
    if mlflow_url:
        experiment_id = report.client.get_run(str(records.run_id.iloc[0])).info.experiment_id
    rows = []
    for row in records.to_dict(orient="records"):
        run = html.escape(str(row["run_id"]))
        if experiment_id is not None and mlflow_url is not None:
            target = f"{mlflow_url.rstrip('/')}/#/experiments/{experiment_id}/runs/{run}"
            run = f'<a href="{html.escape(target)}">{run}</a>'
        value = row.get(metric, math.nan)
        cells = [
            html.escape(str(row["method"])),
            f"{row['lr']:g}",
            str(row["seed"]),
            html.escape(str(row["outcome"])),
            _number(value, 4),
            run,
        ]
        rows.append("<tr>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>")
    header = ["method", "lr", "seed", "outcome", metric, "MLflow run"]
    return [
        "<h2>Cell runs</h2>",
        "<table><thead><tr>"
        + "".join(f"<th>{html.escape(h)}</th>" for h in header)
        + "</tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table>",
    ]


def _table(block: Sequence[str]) -> str:
    def cells(line: str) -> list[str]:
        return [cell.strip() for cell in line.strip().strip("|").split("|")]

    header, body = cells(block[0]), [cells(line) for line in block[2:]]
    head = "".join(f"<th>{_inline(cell, None)}</th>" for cell in header)
    rows = "".join(
        "<tr>" + "".join(f"<td>{_inline(cell, None)}</td>" for cell in row) + "</tr>"
        for row in body
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def _inline(text: str, folder: Path | None) -> str:
    """`code`, **bold**, *italic* and ![alt](path) (embedded from `folder`) in escaped text."""
    parts = re.split(r"(!\[[^\]]*\]\([^)]*\))", text)
    out = []
    for part in parts:
        image = re.fullmatch(r"!\[([^\]]*)\]\(([^)]*)\)", part)
        if image and folder is not None and (folder / image.group(2)).is_file():
            alt = html.escape(image.group(1))
            out.append(
                f'<figure><img alt="{alt}" src="{_data_uri(folder / image.group(2))}">'
                f"<figcaption>{alt}</figcaption></figure>"
            )
            continue
        escaped = html.escape(part)
        escaped = re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped)
        escaped = re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", escaped)
        escaped = re.sub(r"\*([^*]+)\*", r"<i>\1</i>", escaped)
        out.append(escaped)
    return "".join(out)


def _images_in(text: str) -> set[str]:
    return set(re.findall(r"!\[[^\]]*\]\(([^)]*)\)", text))


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def _number(value: Any, digits: int = 4) -> str:
    return f"{value:.{digits}g}" if _finite(value) else "-"


def _signed(value: Any) -> str:
    return f"{value:+.4g}" if _finite(value) else "-"
