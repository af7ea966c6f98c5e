"""MkDocs hooks: the site's version from the package metadata, and the README and CHANGELOG (which
live at the repository's top) as the site's home and changelog pages."""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[1]
# site page -> repository file
TOP_LEVEL_PAGES = {
    "index.md": "README.md",
    "changelog.md": "CHANGELOG.md",
    "contributing.md": "CONTRIBUTING.md",
}
# links of the top-level files, as they read inside the site
SITE_LINKS = {
    "](docs/": "](",
    "](CHANGELOG.md)": "](changelog.md)",
    "](CONTRIBUTING.md)": "](contributing.md)",
}


def on_config(config: Any) -> Any:
    config.site_name = f"adaloss {version('adaloss')}"
    return config


def on_files(files: Files, config: Any) -> Files:
    for page, source in TOP_LEVEL_PAGES.items():
        text = (ROOT / source).read_text(encoding="utf-8")
        for link, in_site in SITE_LINKS.items():
            text = text.replace(link, in_site)
        files.append(File.generated(config, page, content=text))
    return files
