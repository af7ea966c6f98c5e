"""A cell's checkpoints: written atomically, found by cell key, loaded with weights_only=True.

One file per cell, `<cell_key>-epoch<NNNN>.pt`, holding plain tensors and Python values only
(state dicts, RNG states, the metric history). A new checkpoint is written to a temporary file in
the same directory and renamed over the final name, so an interrupted write never leaves a
half-written checkpoint; older checkpoints of the same cell are removed after the rename.
"""

from __future__ import annotations

import logging
import os
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

log = logging.getLogger(__name__)
_NAME = re.compile(r"^(?P<key>[0-9a-f]+)-epoch(?P<epoch>\d{4,})\.pt$")


def checkpoint_path(directory: Path, key: str, epoch: int) -> Path:
    return directory / f"{key}-epoch{epoch:04d}.pt"


def checkpoints(directory: Path, key: str) -> list[tuple[int, Path]]:
    """(epoch, path) of the cell's checkpoints in `directory`, oldest first."""
    if not directory.is_dir():
        return []
    found = []
    for path in directory.iterdir():
        match = _NAME.match(path.name)
        if match and match["key"] == key:
            found.append((int(match["epoch"]), path))
    return sorted(found)


def save_checkpoint(directory: Path, key: str, epoch: int, state: dict[str, Any]) -> Path:
    """Write `state` as the cell's checkpoint after `epoch` and drop its older checkpoints."""
    directory.mkdir(parents=True, exist_ok=True)
    path = checkpoint_path(directory, key, epoch)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        torch.save(state, partial)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    for older_epoch, older in checkpoints(directory, key):
        if older_epoch != epoch:
            older.unlink(missing_ok=True)
    return path


def load_latest(directory: Path, key: str) -> dict[str, Any] | None:
    """The newest readable checkpoint of cell `key` in `directory`, or None when there is none.

    A checkpoint that cannot be read (truncated by a crash mid-copy, say) or that belongs to
    another cell is set aside as `<name>.corrupt` with one warning line, and the next older one
    is tried: the cell resumes from there or restarts, and nothing is lost.
    """
    for _, path in reversed(checkpoints(directory, key)):
        try:
            state: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
            problem = None if state.get("cell_key") == key else "holds another cell's state"
        except Exception as error:  # any unreadable file is handled the same way
            problem = f"is unreadable ({type(error).__name__})"
        if problem is None:
            return state
        aside = path.with_name(path.name + ".corrupt")
        os.replace(path, aside)
        log.warning(
            "checkpoint %s %s; set aside as %s, the cell goes on without it",
            path,
            problem,
            aside.name,
        )
    return None


def rng_state(device: torch.device) -> dict[str, Any]:
    """The global RNG states (torch CPU and CUDA, numpy, Python) as weights_only-safe values."""
    # The legacy global numpy RNG is the one library code draws from, so it is the one to save.
    _, keys, position, has_gauss, cached = np.random.get_state(legacy=True)  # noqa: NPY002
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "position": int(position),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "python": random.getstate(),
    }
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def restore_rng_state(state: dict[str, Any], device: torch.device) -> None:
    """Inverse of `rng_state`."""
    torch.set_rng_state(state["torch"])
    numpy_state = state["numpy"]
    np.random.set_state(  # noqa: NPY002
        (
            "MT19937",
            numpy_state["keys"].numpy().astype(np.uint32),
            numpy_state["position"],
            numpy_state["has_gauss"],
            numpy_state["cached_gaussian"],
        )
    )
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)
