"""`bench data`: list, prepare and preview the benchmark datasets."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from bench.cli.options import EXIT_CODES_HELP, BadInput, data_root_option, size_profile_option
from bench.profiles import PROFILES

if TYPE_CHECKING:
    from bench.data.sources import Prepared


source_option = click.option(
    "--source",
    default="synthetic",
    show_default=True,
    metavar="synthetic|PATH",
    help="'synthetic', or the path of real data in the task's format.",
)


@click.group(epilog=EXIT_CODES_HELP)
def data() -> None:
    """Generate, cache, list and preview the benchmark datasets."""


@data.command("list")
@data_root_option
def list_command(data_root: Path | None) -> None:
    """Tasks, profiles and the cached variants with their size and status."""
    from bench.data import sources
    from bench.tasks import TASKS

    click.echo("tasks:")
    for entry in TASKS.values():
        layout = entry.layout
        if layout is None:
            shape = "landmarks, channels and instances from the data"
        else:
            height, width = layout.reference_size
            kind = "multi-instance" if layout.multi_instance else "one per landmark"
            shape = (
                f"{len(layout.landmark_names):>3} landmarks ({kind}), {layout.channels} "
                f"channel(s), reference {height}x{width}"
            )
        click.echo(f"  {entry.name:<9} {shape}: {entry.description}")
    click.echo(f"profiles: {', '.join(PROFILES)}")
    base = sources.data_root(data_root)
    variants = sources.cached_variants(data_root)
    if not variants:
        click.echo(f"cached variants under {base}: none (run `bench data prepare TASK`)")
        return
    click.echo(f"cached variants under {base}:")
    for task, status in variants:
        counts = ""
        if status.manifest is not None:
            splits = status.manifest.get("splits", {})
            counts = "/".join(str(splits.get(s, {}).get("size", "?")) for s in sources.SPLITS)
            shape = splits.get("train", {}).get("image_shape")
            if shape:
                counts += f" (train/val/test), {shape[0]}x{shape[1]}x{shape[2]}"
        note = f" - {status.detail}" if status.detail else ""
        click.echo(
            f"  {task:<9} {status.directory.name:<26} {_megabytes(status.size_bytes):>9} "
            f"{status.state:<8} {counts}{note}"
        )


@data.command("prepare")
@click.argument("task")
@size_profile_option
@source_option
@data_root_option
def prepare_command(task: str, profile: str, source: str, data_root: Path | None) -> None:
    """Generate (or load real data for) TASK once and cache it under the root."""
    from bench.data import sources

    _check_task(task)
    prepared = _prepare(task, profile, source, data_root)
    data_set = prepared.dataset
    sizes = ", ".join(f"{len(split)} {name}" for name, split in data_set.splits.items())
    height, width = data_set.image_size
    total = sum(p.stat().st_size for p in prepared.directory.iterdir() if p.is_file())
    verb = {"cached": "found cached", "generated": "generated", "loaded": "loaded and cached"}
    click.echo(
        f"{verb[prepared.action]} {task}/{prepared.directory.name} in {prepared.seconds:.1f} s "
        f"-> {prepared.directory}"
    )
    click.echo(
        f"  {sizes}; images {height}x{width}x{data_set.channels}; "
        f"{data_set.num_landmarks} landmarks; {_megabytes(total)}; "
        f"splits {', '.join(sources.SPLITS)}"
    )


@data.command("show")
@click.argument("task")
@size_profile_option
@click.option("--split", default="test", show_default=True, help="train, val or test.")
@click.option(
    "--subset", default="full", show_default=True, help="A named subset of the split, or full."
)
@source_option
@data_root_option
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="PNG file to write.",
)
@click.option("--n", "count", default=16, show_default=True, type=click.IntRange(min=1))
def show_command(
    task: str,
    profile: str,
    split: str,
    subset: str,
    source: str,
    data_root: Path | None,
    out: Path,
    count: int,
) -> None:
    """Write a grid of TASK's images with landmarks drawn (coloured by group) to --out."""
    from bench.data import sources

    _check_task(task)
    if split not in sources.SPLITS:
        raise click.BadParameter(
            f"unknown split {split!r}; choose one of: {', '.join(sources.SPLITS)}",
            param_hint="'--split'",
        )
    prepared = _prepare(task, profile, source, data_root)
    chosen = prepared.dataset.split(split)
    known = ["full", *chosen.subsets]
    if subset not in known:
        raise click.BadParameter(
            f"unknown subset {subset!r} of {task} {split}; choose one of: {', '.join(known)}",
            param_hint="'--subset'",
        )
    from bench.data.preview import save_preview

    drawn = save_preview(prepared.dataset, out, split=split, subset=subset, n=count)
    click.echo(f"wrote {out} ({drawn} images of {task}/{prepared.directory.name} {split}/{subset})")


def _check_task(task: str) -> None:

    from bench.tasks import TASK_NAMES

    if task not in TASK_NAMES:
        raise click.BadParameter(
            f"unknown task {task!r}; choose one of: {', '.join(TASK_NAMES)}",
            param_hint="'TASK'",
        )


def _prepare(task: str, profile: str, source: str, data_root: Path | None) -> Prepared:
    """sources.prepare_dataset with its errors turned into one-line CLI errors."""
    from bench.cli.inputs import check_writable_folder
    from bench.data import sources

    if source != "synthetic" and not Path(source).exists():
        raise click.BadParameter(
            f"{source} does not exist; pass 'synthetic' or the path of the real data",
            param_hint="'--source'",
        )
    try:
        check_writable_folder(sources.data_root(data_root), "--data-root")
        return sources.prepare_dataset(task, profile, source, data_root)
    except (RuntimeError, ValueError, FileNotFoundError) as error:
        raise BadInput(str(error)) from None


def _megabytes(size: int) -> str:
    return f"{size / 1e6:.1f} MB"
