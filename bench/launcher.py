"""The `bench` console script: checks that the harness's packages are installed, then runs the CLI.

`pip install adaloss` installs the library alone; the harness needs the `bench` extra. Without it
`bench` would die on its first import with a traceback; this says in one line what is missing and
how to install it (exit 2, nothing run). `importlib.util.find_spec` looks for a package without
importing it, so the check costs milliseconds.
"""

from __future__ import annotations

import importlib.util
import sys

# import name -> distribution name, for what bench imports from the `bench` extra
HARNESS_PACKAGES = {
    "click": "click",
    "mlflow": "mlflow",
    "optuna": "optuna",
    "pandas": "pandas",
    "yaml": "pyyaml",
    "matplotlib": "matplotlib",
    "tqdm": "tqdm",
    "sqlalchemy": "sqlalchemy",
}
INSTALL_HINT = "pip install 'adaloss[bench]' (from a checkout: pip install -e '.[bench]')"


def missing_packages() -> list[str]:
    """The distributions of the `bench` extra that cannot be imported, in a stable order."""
    return [
        dist for name, dist in HARNESS_PACKAGES.items() if importlib.util.find_spec(name) is None
    ]


def main() -> None:
    missing = missing_packages()
    if missing:
        print(
            f"Error: bench needs the harness's packages, missing: {', '.join(missing)}; "
            f"install them with {INSTALL_HINT}",
            file=sys.stderr,
        )
        sys.exit(2)
    from bench.cli import main as cli

    cli()
