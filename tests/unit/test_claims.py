"""bench.track.claims on a SQLite store's folder: one holder per cell key, released on release,
on close and when the holding process dies."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from bench.track.claims import FileClaims, UnlockedClaims, open_claims


def test_a_claimed_key_is_refused_to_another_holder_until_released(tmp_path: Path) -> None:
    first, second = FileClaims(tmp_path), FileClaims(tmp_path)
    assert first.try_claim("abc")
    assert not second.try_claim("abc")  # flock: another open file description, refused
    assert second.holder("abc") == f"pid {os.getpid()} on {os.uname().nodename}"
    assert second.try_claim("def")  # other keys are free
    first.release("abc")
    assert second.try_claim("abc")
    second.close()
    assert first.try_claim("abc") and first.try_claim("def")


def test_a_dead_holders_claim_expires(tmp_path: Path) -> None:
    holder = (
        "import sys; from pathlib import Path; from bench.track.claims import FileClaims; "
        "assert FileClaims(Path(sys.argv[1])).try_claim('k'); print('held', flush=True); "
        "sys.stdin.read()"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", holder, str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stdout.readline().strip() == "held"
    assert not FileClaims(tmp_path).try_claim("k")
    process.kill()
    process.wait()
    assert FileClaims(tmp_path).try_claim("k")


def test_each_store_gets_its_kind_of_claims(tmp_path: Path) -> None:
    claims = open_claims(f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    assert isinstance(claims, FileClaims)
    assert claims.directory == tmp_path / "mlruns" / "claims"
    assert isinstance(open_claims("http://127.0.0.1:5000"), UnlockedClaims)
