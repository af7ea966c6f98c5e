"""Wheels for a GPU machine that cannot reach a package index: what `.[bench]` needs beyond what
the machine's image already has, downloaded here for its Python.

    python tools/gpu_wheels.py --have image_packages.txt --python 3.12 --out .whl

--have lists the distributions the target already holds (one name a line, or `pip list` /
`pip freeze` output; torch, triton and the nvidia-* packages count as present whatever the
file says: the machine brings its CUDA build). The dependency closure of `.[bench]` is resolved
here (`pip install --dry-run --report`, against the index), and every distribution in it that
the target lacks is downloaded as a binary wheel for the target's Python and manylinux
platforms, without its own dependencies (they are in the closure). On the target:

    python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl
    PYTHONPATH=/tmp/site:$PWD python3 tools/gpu_check.py --out $OUT

docs/scale-out.md ("Before the first GPU grid") says when this is needed.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ALWAYS_THERE = re.compile(r"^(torch|triton|nvidia-.*|pip|setuptools|wheel)$")
PLATFORMS = (
    "manylinux_2_28_x86_64",
    "manylinux_2_27_x86_64",
    "manylinux_2_17_x86_64",
    "manylinux2014_x86_64",
    "manylinux1_x86_64",
)


def canonical(name: str) -> str:
    """PEP 503's normalised distribution name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_have(path: Path) -> set[str]:
    """Distribution names from a list, `pip list` or `pip freeze` output, or a comma list."""
    names = set()
    for line in path.read_text(encoding="utf-8").replace(",", "\n").splitlines():
        match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", line)
        if match and not line.lstrip().startswith(("#", "Package", "---")):
            names.add(canonical(match.group(1)))
    return names


def closure() -> dict[str, str]:
    """name -> version of every distribution `pip install .[bench]` would install here."""
    with tempfile.TemporaryDirectory() as folder:
        report = Path(folder) / "report.json"
        subprocess.run(
            [
                sys.executable, "-m", "pip", "install", "--dry-run", "--quiet",
                "--ignore-installed",
                "--report", str(report), f"{ROOT}[bench]",
            ],
            check=True,
        )  # fmt: skip
        installs = json.loads(report.read_text())["install"]
    return {
        canonical(item["metadata"]["name"]): item["metadata"]["version"]
        for item in installs
        if canonical(item["metadata"]["name"]) != "adaloss"
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--have", type=Path, required=True, help="what the target already has")
    parser.add_argument("--python", default="3.12", help="the target's Python (major.minor)")
    parser.add_argument("--out", type=Path, default=Path(".whl"))
    args = parser.parse_args()
    have = read_have(args.have)
    needed = {
        name: version
        for name, version in closure().items()
        if name not in have and not ALWAYS_THERE.match(name)
    }
    args.out.mkdir(parents=True, exist_ok=True)
    platforms = [option for platform in PLATFORMS for option in ("--platform", platform)]
    subprocess.run(
        [
            sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
            "--only-binary=:all:", "--python-version", args.python, "--implementation", "cp",
            *platforms, "--dest", str(args.out),
            *(f"{name}=={version}" for name, version in sorted(needed.items())),
        ],
        check=True,
    )  # fmt: skip
    wheels = sorted(args.out.glob("*.whl"))
    size = sum(wheel.stat().st_size for wheel in wheels)
    print(
        f"{len(needed)} distributions the target lacks ({', '.join(sorted(needed))}); "
        f"{len(wheels)} wheels in {args.out}, {size / 2**20:.1f} MiB"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
