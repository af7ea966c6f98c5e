"""The mutation score of the last `mutmut run` (`tox -e mutation`), per file and in all.

Reads the results mutmut keeps beside each mutated file (mutants/<path>.meta) and classifies
them with mutmut's own table of exit codes. The score counts a mutant as caught when a test
failed on it or it ran into the time limit (an endless loop is a failure too); mutants no
selected test reaches count against it, and those the run did not select are left out.

    python tools/mutation_score.py [--mutants mutants] [--survivors]
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from mutmut.stats import status_by_exit_code

CAUGHT = ("killed", "timeout", "caught by type check")


def results(mutants: Path) -> dict[str, dict[str, str]]:
    """source file -> mutant name -> status."""
    found = {}
    for meta in sorted(mutants.rglob("*.py.meta")):
        codes = json.loads(meta.read_text(encoding="utf-8"))["exit_code_by_key"]
        source = str(meta.relative_to(mutants)).removesuffix(".meta")
        statuses = {name: status_by_exit_code[code] for name, code in codes.items()}
        # mutants outside the run's selection (`tox -e mutation` names them) are not checked
        found[source] = {
            name: status for name, status in statuses.items() if status != "not checked"
        }
    return found


def score_line(name: str, statuses: Counter[str]) -> str:
    counted = sum(statuses.values()) - statuses["skipped"]
    caught = sum(statuses[status] for status in CAUGHT)
    score = 100 * caught / counted if counted else float("nan")
    return (
        f"{name:<28} {counted:>6} {caught:>6} {statuses['survived']:>8} "
        f"{statuses['no tests']:>8} {score:>6.1f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mutants", type=Path, default=Path("mutants"))
    parser.add_argument("--survivors", action="store_true", help="list every surviving mutant")
    args = parser.parse_args()
    found = results(args.mutants)
    if not found:
        raise SystemExit(f"{args.mutants}: no mutmut results; run `tox -e mutation` first")
    print(f"{'file':<28} {'mutants':>6} {'caught':>6} {'survived':>8} {'no tests':>8} {'score':>6}")
    overall: Counter[str] = Counter()
    for source, statuses in found.items():
        counts = Counter(statuses.values())
        overall += counts
        print(score_line(source, counts))
    print(score_line("all", overall))
    if args.survivors:
        for statuses in found.values():
            for name, status in statuses.items():
                if status in ("survived", "no tests"):
                    print(f"{status}: {name}")


if __name__ == "__main__":
    main()
