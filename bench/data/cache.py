"""The on-disk dataset cache: `.npy` arrays plus a `manifest.json`, loaded memory-mapped.

One cached variant is one directory:

    manifest.json                     provenance, layout, splits, per-file and content hashes
    <split>.images.npy                (N, C, H, W) float32
    <split>.points.npy                (N, K, 2) or (N, K, M, 2) float32, NaN for missing
    <split>.subset.<name>.npy         (n,) int64 indices into the split
    <split>.frames.npy                (N, 2) int64 each image's reporting frame (only when set)

`provenance` is whatever determines the content (generator module and version, parameters, seed;
or the real data's path and fingerprint). `load_cached` returns None, after one warning line, when
the directory is missing, partial or corrupt, and None without a warning when the provenance
differs from the expected one, so the caller regenerates. `save_dataset` writes into a temporary
sibling directory and renames it into place, so a parallel reader sees the old variant, the new
one or nothing, never half a dataset.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.data.dataset import LandmarkDataset, Split

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
_CHUNK = 1 << 22

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CacheStatus:
    """What `inspect_cache` found: state is "ok", "stale", "partial" or "corrupt"."""

    directory: Path
    state: str
    detail: str
    size_bytes: int
    manifest: dict[str, Any] | None


def normalise_json(value: Any) -> Any:
    """`value` as it reads back from JSON (tuples become lists), for comparing provenance."""
    return json.loads(json.dumps(value, sort_keys=True))


def array_files(dataset: LandmarkDataset) -> dict[str, np.ndarray]:
    """File name -> array for every array of `dataset`, in a fixed order."""
    files: dict[str, np.ndarray] = {}
    for split_name, split in dataset.splits.items():
        _check_name(split_name, "split")
        files[f"{split_name}.images.npy"] = _contiguous(split.images, np.float32)
        files[f"{split_name}.points.npy"] = _contiguous(split.points, np.float32)
        for subset_name, indices in split.subsets.items():
            _check_name(subset_name, "subset")
            files[f"{split_name}.subset.{subset_name}.npy"] = _contiguous(indices, np.int64)
        if split.frames is not None:
            files[f"{split_name}.frames.npy"] = _contiguous(split.frames, np.int64)
    return files


def content_hash(dataset: LandmarkDataset) -> str:
    """sha256 over the `.npy` serialisation of every array (the bytes `save_dataset` writes)."""
    file_hashes = {}
    for name, array in array_files(dataset).items():
        sink = _HashSink()
        np.save(sink, array, allow_pickle=False)
        file_hashes[name] = sink.digest.hexdigest()
    return _combine(file_hashes)


def save_dataset(
    dataset: LandmarkDataset, directory: Path, provenance: dict[str, Any]
) -> dict[str, Any]:
    """Write `dataset` to `directory` atomically and return its manifest."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.tmp-", dir=directory.parent))
    staging.chmod(0o755)  # mkdtemp makes it private; a dataset is shared like any other file
    try:
        file_hashes = {}
        for name, array in array_files(dataset).items():
            np.save(staging / name, array, allow_pickle=False)
            file_hashes[name] = _file_hash(staging / name)
        manifest = {
            "format": FORMAT_VERSION,
            "task": dataset.task,
            "variant": dataset.variant,
            "provenance": normalise_json(provenance),
            "landmark_names": list(dataset.landmark_names),
            "landmark_groups": {k: list(v) for k, v in dataset.landmark_groups.items()},
            "reference_size": list(dataset.reference_size),
            "splits": {
                name: {
                    "size": len(split),
                    "image_shape": list(split.images.shape[1:]),
                    "points_shape": list(split.points.shape[1:]),
                    "subsets": {k: len(v) for k, v in split.subsets.items()},
                    "frames": split.frames is not None,
                }
                for name, split in dataset.splits.items()
            },
            "files": file_hashes,
            "content_hash": _combine(file_hashes),
        }
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        _install(staging, directory)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return manifest


def load_cached(
    directory: Path, provenance: dict[str, Any], *, verify: bool = True
) -> LandmarkDataset | None:
    """The dataset cached in `directory` if it matches `provenance`, memory-mapped; else None.

    verify: re-hash every file against the manifest (reads the whole variant once; it then sits
    in the page cache for training). A mismatch, a missing file or an unreadable manifest logs one
    warning line and returns None.
    """
    if not directory.is_dir():
        return None
    manifest = _read_manifest(directory)
    if manifest is None:
        log.warning("dataset cache %s has no readable manifest; regenerating", directory)
        return None
    if manifest.get("provenance") != normalise_json(provenance):
        return None
    problem = _check_files(directory, manifest, verify=verify)
    if problem is not None:
        log.warning("dataset cache %s is %s; regenerating", directory, problem)
        return None
    return _map_dataset(directory, manifest)


def inspect_cache(directory: Path, provenance: dict[str, Any] | None = None) -> CacheStatus:
    """Status of one cached variant without hashing: files present with the manifest's sizes.

    provenance: when given and different from the manifest's, the state is "stale".
    """
    size = sum(p.stat().st_size for p in directory.iterdir() if p.is_file())
    manifest = _read_manifest(directory)
    if manifest is None:
        return CacheStatus(directory, "partial", "no readable manifest.json", size, None)
    problem = _check_files(directory, manifest, verify=False)
    if problem is not None:
        return CacheStatus(directory, "corrupt", problem, size, manifest)
    if provenance is not None and manifest.get("provenance") != normalise_json(provenance):
        return CacheStatus(
            directory, "stale", "parameters or generator version changed", size, manifest
        )
    return CacheStatus(directory, "ok", "", size, manifest)


class _HashSink:
    """A write-only file object that hashes what is written to it."""

    def __init__(self) -> None:
        self.digest = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        return len(data)


def _contiguous(tensor: torch.Tensor, dtype: type[np.generic]) -> np.ndarray:
    return np.ascontiguousarray(tensor.detach().cpu().numpy(), dtype=dtype)


def _check_name(name: str, kind: str) -> None:
    if not _SAFE_NAME.match(name):
        raise ValueError(
            f"{kind} name {name!r} cannot be a cache file name; use letters, digits, '_' or '-'"
        )


def _combine(file_hashes: dict[str, str]) -> str:
    digest = hashlib.sha256()
    for name in sorted(file_hashes):
        digest.update(f"{name}:{file_hashes[name]}\n".encode())
    return digest.hexdigest()


def _file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _read_manifest(directory: Path) -> dict[str, Any] | None:
    try:
        manifest = json.loads((directory / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_VERSION:
        return None
    return manifest


def _check_files(directory: Path, manifest: dict[str, Any], *, verify: bool) -> str | None:
    """None if every file the manifest lists is present (and, with verify, hashes right)."""
    for name, expected in manifest.get("files", {}).items():
        path = directory / name
        if not path.is_file():
            return f"partial (missing {name})"
        if verify and _file_hash(path) != expected:
            return f"corrupt ({name} does not match its hash)"
        if not verify:
            try:
                np.load(path, mmap_mode="r")
            except (OSError, ValueError):
                return f"corrupt ({name} is truncated or unreadable)"
    return None


def _map_dataset(directory: Path, manifest: dict[str, Any]) -> LandmarkDataset:
    def mapped(name: str) -> torch.Tensor:
        # copy-on-write mapping: pages are shared with the page cache and never written back,
        # and torch gets a writable buffer (a read-only one makes torch warn on every load)
        return torch.from_numpy(np.load(directory / name, mmap_mode="c"))

    splits = {
        split_name: Split(
            images=mapped(f"{split_name}.images.npy"),
            points=mapped(f"{split_name}.points.npy"),
            subsets={
                subset: mapped(f"{split_name}.subset.{subset}.npy") for subset in info["subsets"]
            },
            frames=mapped(f"{split_name}.frames.npy") if info.get("frames") else None,
        )
        for split_name, info in manifest["splits"].items()
    }
    return LandmarkDataset(
        task=manifest["task"],
        variant=manifest["variant"],
        landmark_names=tuple(manifest["landmark_names"]),
        landmark_groups={k: tuple(v) for k, v in manifest["landmark_groups"].items()},
        splits=splits,
        reference_size=(int(manifest["reference_size"][0]), int(manifest["reference_size"][1])),
    )


def _install(staging: Path, directory: Path) -> None:
    """Rename `staging` to `directory`, replacing an old variant; a concurrent writer may win.

    Losing a race is fine: every writer of one directory wrote the same provenance.
    """
    if not directory.exists():
        with contextlib.suppress(OSError):
            os.rename(staging, directory)
        return
    retired = Path(tempfile.mkdtemp(prefix=f".{directory.name}.old-", dir=directory.parent))
    with contextlib.suppress(FileNotFoundError):
        os.replace(directory, retired / "variant")
    with contextlib.suppress(OSError):
        os.rename(staging, directory)
    shutil.rmtree(retired, ignore_errors=True)
