"""`bench data list / prepare / show` through click's test runner."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from bench.cli import main


def bench(*args: str) -> tuple[int, str]:
    """Run `bench ARGS` through the root group (lazy subcommands included); (code, output)."""
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("Error:")]


def test_list_on_an_empty_root_shows_tasks_and_profiles(tmp_path: Path) -> None:
    code, out = bench("data", "list", "--data-root", str(tmp_path))
    assert code == 0, out
    for task in ("cathdet", "face300w", "endovis"):
        assert task in out
    assert "68 landmarks" in out and "reference 576x720" in out
    assert "profiles: smoke, quick, paper" in out
    assert "none" in out


def test_prepare_then_list_then_prepare_again(tmp_path: Path) -> None:
    code, out = bench(
        "data", "prepare", "cathdet", "--profile", "smoke", "--data-root", str(tmp_path)
    )
    assert code == 0, out
    target = tmp_path / "cathdet" / "synthetic-smoke"
    assert out.startswith("generated cathdet/synthetic-smoke in ")
    assert str(target) in out
    assert "24 train, 8 val, 16 test; images 32x32x1; 1 landmarks" in out
    assert (target / "manifest.json").is_file()

    code, out = bench("data", "list", "--data-root", str(tmp_path))
    assert code == 0, out
    row = next(line for line in out.splitlines() if "synthetic-smoke" in line)
    assert row.split()[0] == "cathdet" and " ok " in row and "24/8/16" in row

    code, out = bench(
        "data", "prepare", "cathdet", "--profile", "smoke", "--data-root", str(tmp_path)
    )
    assert code == 0 and out.startswith("found cached cathdet/synthetic-smoke")


def test_show_writes_a_png_grid(tmp_path: Path) -> None:
    import matplotlib.image

    out_file = tmp_path / "previews" / "face.png"
    code, out = bench(
        "data", "show", "face300w", "--profile", "smoke", "--data-root", str(tmp_path),
        "--subset", "challenging", "--out", str(out_file), "--n", "4",
    )  # fmt: skip
    assert code == 0, out
    assert "wrote" in out and "4 images of face300w/synthetic-smoke test/challenging" in out
    assert out_file.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    picture = matplotlib.image.imread(out_file)
    assert picture.ndim == 3 and min(picture.shape[:2]) > 200
    assert picture[..., :3].std() > 0.05  # not a blank canvas


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["prepare", "nope"], "unknown task 'nope'; choose one of: cathdet, face300w, endovis"),
        (["show", "cathdet", "--split", "dev"], "unknown split 'dev'; choose one of: train, val"),
        (["show", "cathdet", "--subset", "odd"], "unknown subset 'odd' of cathdet test; choose"),
        (["prepare", "cathdet", "--profile", "huge"], "'huge' is not one of 'smoke', 'quick'"),
        (["prepare", "cathdet", "--source", "/no/such/dir"], "/no/such/dir does not exist"),
    ],
)
def test_bad_values_fail_with_one_line_naming_the_choices(
    tmp_path: Path, args: list[str], message: str
) -> None:
    extra = ["--profile", "smoke"] if "--profile" not in args else []
    if args[0] == "show":
        extra += ["--out", str(tmp_path / "x.png")]
    code, out = bench("data", *args, *extra, "--data-root", str(tmp_path))
    assert code != 0
    errors = error_lines(out)
    assert len(errors) == 1 and message in errors[0], out
    assert not (tmp_path / "x.png").exists()
