"""The dataset cache and registry: determinism, invalidation, corruption, mmap, atomic writes."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest
import torch

from bench.data import cache, sources
from bench.data.dataset import LandmarkDataset, Split
from bench.data.synthetic import cathdet


def tiny_dataset(variant: str = "synthetic-smoke") -> LandmarkDataset:
    """A hand-made dataset with NaN points and a named subset."""
    images = torch.arange(2 * 1 * 3 * 4, dtype=torch.float32).reshape(2, 1, 3, 4) / 24
    points = torch.tensor([[[1.0, 2.0]], [[float("nan"), float("nan")]]])
    split = Split(images, points, {"odd": torch.tensor([1])})
    return LandmarkDataset(
        task="cathdet",
        variant=variant,
        landmark_names=("tip",),
        landmark_groups={"tip": (0,)},
        splits={"train": split, "val": split, "test": split},
        reference_size=(256, 256),
    )


def file_digests(directory: Path) -> dict[str, str]:
    """sha256 of every file's bytes, computed here without the cache module."""
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.iterdir())
        if p.is_file()
    }


def test_same_seed_same_bytes_and_another_seed_differs(tmp_path: Path) -> None:
    first = sources.prepare_dataset("cathdet", "smoke", root=tmp_path / "a")
    second = sources.prepare_dataset("cathdet", "smoke", root=tmp_path / "b")
    other = sources.prepare_dataset("cathdet", "smoke", root=tmp_path / "c", seed=1)
    assert first.action == second.action == other.action == "generated"
    assert file_digests(first.directory) == file_digests(second.directory)
    a, c = file_digests(first.directory), file_digests(other.directory)
    assert a["train.images.npy"] != c["train.images.npy"]
    assert other.directory.name == "synthetic-smoke-seed1"
    # the manifest's content hash is the in-memory hash of the generated arrays
    manifest = json.loads((first.directory / "manifest.json").read_text())
    regenerated = cathdet.generate(cathdet.PROFILES["smoke"], 0)
    assert manifest["content_hash"] == cache.content_hash(regenerated)
    assert cache.content_hash(regenerated) != cache.content_hash(
        cathdet.generate(cathdet.PROFILES["smoke"], 1)
    )


def test_round_trip_keeps_values_nan_subsets_and_layout(tmp_path: Path) -> None:
    original = tiny_dataset()
    cache.save_dataset(original, tmp_path / "v", {"seed": 0})
    loaded = cache.load_cached(tmp_path / "v", {"seed": 0})
    assert loaded is not None
    for name, split in original.splits.items():
        back = loaded.split(name)
        assert torch.equal(back.images, split.images)
        assert torch.equal(torch.isnan(back.points), torch.isnan(split.points))
        assert torch.equal(back.points.nan_to_num(-1), split.points.nan_to_num(-1))
        assert torch.equal(back.subset_indices("odd"), torch.tensor([1]))
    assert loaded.landmark_names == ("tip",)
    assert loaded.landmark_groups == {"tip": (0,)}
    assert loaded.reference_size == (256, 256)
    assert cache.load_cached(tmp_path / "v", {"seed": 1}) is None  # other provenance


def mapped_files() -> dict[str, list[tuple[int, int]]]:
    """Path -> address ranges of this process's file mappings, from /proc/self/maps."""
    ranges: dict[str, list[tuple[int, int]]] = {}
    for line in Path("/proc/self/maps").read_text().splitlines():
        fields = line.split(maxsplit=5)
        if len(fields) == 6:
            start, end = (int(v, 16) for v in fields[0].split("-"))
            ranges.setdefault(fields[5], []).append((start, end))
    return ranges


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs Linux /proc")
def test_load_is_memory_mapped(tmp_path: Path) -> None:
    prepared = sources.prepare_dataset("cathdet", "smoke", root=tmp_path)
    images = prepared.dataset.split("train").images
    path = str((prepared.directory / "train.images.npy").resolve())
    ranges = mapped_files().get(path, [])
    assert any(start <= images.data_ptr() < end for start, end in ranges), ranges
    assert images.dtype == torch.float32 and images.is_contiguous()


def test_unchanged_request_reuses_the_cache(tmp_path: Path) -> None:
    assert sources.prepare_dataset("cathdet", "smoke", root=tmp_path).action == "generated"
    assert sources.prepare_dataset("cathdet", "smoke", root=tmp_path).action == "cached"


def test_parameter_change_regenerates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sources.prepare_dataset("cathdet", "smoke", root=tmp_path)
    changed = dataclasses.replace(cathdet.PROFILES["smoke"], n_train=5)
    monkeypatch.setitem(cathdet.PROFILES, "smoke", changed)
    again = sources.prepare_dataset("cathdet", "smoke", root=tmp_path)
    assert again.action == "generated"
    assert len(again.dataset.split("train")) == 5
    manifest = json.loads((again.directory / "manifest.json").read_text())
    assert manifest["provenance"]["parameters"]["n_train"] == 5


def test_generator_version_change_regenerates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sources.prepare_dataset("cathdet", "smoke", root=tmp_path)
    monkeypatch.setattr(cathdet, "GENERATOR_VERSION", cathdet.GENERATOR_VERSION + 1)
    assert sources.prepare_dataset("cathdet", "smoke", root=tmp_path).action == "generated"
    status = sources.cached_variants(tmp_path)
    assert [(task, s.state) for task, s in status] == [("cathdet", "ok")]


@pytest.mark.parametrize("damage", ["flip", "truncate", "delete", "manifest"])
def test_corrupt_or_partial_cache_is_regenerated_with_one_warning(
    tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    first = sources.prepare_dataset("cathdet", "smoke", root=tmp_path)
    good = file_digests(first.directory)
    target = first.directory / "train.images.npy"
    if damage == "flip":
        raw = bytearray(target.read_bytes())
        raw[-5] ^= 0xFF
        target.write_bytes(bytes(raw))
    elif damage == "truncate":
        target.write_bytes(target.read_bytes()[:-100])
    elif damage == "delete":
        target.unlink()
    else:
        (first.directory / "manifest.json").write_text("{not json")
    expected_state = {"flip": "ok", "truncate": "corrupt", "delete": "corrupt"}.get(
        damage, "partial"
    )
    # the listing does not hash: a flipped byte is only caught when the data are loaded
    assert sources.cached_variants(tmp_path)[0][1].state == expected_state
    with caplog.at_level(logging.WARNING, logger="bench.data.cache"):
        again = sources.prepare_dataset("cathdet", "smoke", root=tmp_path)
    assert again.action == "generated"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "\n" not in warnings[0]
    assert "regenerating" in warnings[0] and str(first.directory) in warnings[0]
    assert file_digests(again.directory) == good


def test_writes_are_atomic_and_leave_no_temporaries(tmp_path: Path) -> None:
    target = tmp_path / "cathdet" / "synthetic-smoke"
    cache.save_dataset(tiny_dataset(), target, {"seed": 0})
    cache.save_dataset(tiny_dataset(), target, {"seed": 1})  # replaces the old variant
    assert [p.name for p in target.parent.iterdir()] == ["synthetic-smoke"]
    assert cache.load_cached(target, {"seed": 1}) is not None
    assert cache.load_cached(target, {"seed": 0}) is None


@pytest.mark.slow  # two fresh interpreters importing torch
def test_parallel_workers_prepare_one_variant(tmp_path: Path) -> None:
    script = (
        "import sys; from bench.data.sources import prepare_dataset; "
        "from bench.data.cache import content_hash; "
        "print(content_hash(prepare_dataset('cathdet', 'smoke', root=sys.argv[1]).dataset))"
    )
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    hashes = {w.communicate(timeout=120)[0].strip() for w in workers}
    assert all(w.returncode == 0 for w in workers)
    assert len(hashes) == 1
    assert [p.name for p in (tmp_path / "cathdet").iterdir()] == ["synthetic-smoke"]
    assert sources.prepare_dataset("cathdet", "smoke", root=tmp_path).action == "cached"


def test_root_defaults_to_env_then_datasets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(sources.ROOT_ENV, "/somewhere/else")
    assert sources.data_root() == Path("/somewhere/else")
    assert sources.data_root("given") == Path("given")
    monkeypatch.delenv(sources.ROOT_ENV)
    assert sources.data_root() == Path("datasets")


def test_unknown_task_and_profile_name_the_choices() -> None:
    with pytest.raises(
        ValueError, match=r"unknown task 'nope'; known tasks: cathdet, face300w, endovis, keypoints"
    ):
        sources.load_dataset("nope")
    with pytest.raises(ValueError, match="unknown profile 'huge'; choose one of: smoke, quick"):
        sources.load_dataset("cathdet", "huge")


def install_fake(monkeypatch: pytest.MonkeyPatch, name: str, **attributes: object) -> None:
    module = types.ModuleType(name)
    for key, value in attributes.items():
        setattr(module, key, value)
    monkeypatch.setitem(sys.modules, name, module)


def test_real_source_goes_through_the_loader_and_tracks_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[Path, tuple[int, int]]] = []

    def load(path: Path, image_size: tuple[int, int]) -> LandmarkDataset:
        calls.append((path, image_size))
        return tiny_dataset("real")

    install_fake(monkeypatch, "fake_loader", load=load)
    spec = dataclasses.replace(sources.TASKS["cathdet"], loader="fake_loader")
    monkeypatch.setitem(sources.TASKS, "cathdet", spec)
    source = tmp_path / "mydata"
    source.mkdir()
    (source / "a.json").write_text("{}")

    first = sources.prepare_dataset("cathdet", "smoke", source, root=tmp_path / "root")
    digest = hashlib.sha256(str(source.resolve()).encode()).hexdigest()[:8]
    assert first.action == "loaded"
    assert first.directory.name == f"real-{digest}-smoke"
    assert calls == [(source, cathdet.PROFILES["smoke"].image_size)]
    assert sources.prepare_dataset("cathdet", "smoke", source, tmp_path / "root").action == (
        "cached"
    )
    (source / "b.json").write_text("{}")  # the real data changed: load again
    assert sources.cached_variants(tmp_path / "root")[0][1].state == "stale"
    assert sources.prepare_dataset("cathdet", "smoke", source, tmp_path / "root").action == (
        "loaded"
    )
    assert len(calls) == 2
    with pytest.raises(FileNotFoundError, match="does not exist"):
        sources.prepare_dataset("cathdet", "smoke", tmp_path / "missing", tmp_path / "root")


def test_broken_module_affects_only_its_task(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = dataclasses.replace(
        sources.TASKS["face300w"], synthetic="bench.data.synthetic.not_there"
    )
    monkeypatch.setitem(sources.TASKS, "face300w", spec)
    with pytest.raises(RuntimeError, match=r"task 'face300w' needs module bench\.data\.synthetic"):
        sources.prepare_dataset("face300w", "smoke", root=tmp_path)
    assert sources.prepare_dataset("cathdet", "smoke", root=tmp_path).action == "generated"


def test_generator_with_the_wrong_layout_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    renamed = dataclasses.replace(tiny_dataset(), landmark_names=("apex",))
    install_fake(
        monkeypatch,
        "fake_generator",
        GENERATOR_VERSION=1,
        PROFILES=cathdet.PROFILES,
        generate=lambda params, seed: renamed,
    )
    spec = dataclasses.replace(sources.TASKS["cathdet"], synthetic="fake_generator")
    monkeypatch.setitem(sources.TASKS, "cathdet", spec)
    with pytest.raises(
        ValueError, match=r"synthetic: landmarks \(apex: 1\), but task 'cathdet' has \(tip: 1\)$"
    ):
        sources.prepare_dataset("cathdet", "smoke", root=tmp_path)
    assert not (tmp_path / "cathdet" / "synthetic-smoke").exists()


def test_unsafe_subset_names_are_refused(tmp_path: Path) -> None:
    bad = tiny_dataset()
    bad.splits["test"] = Split(
        bad.splits["test"].images,
        bad.splits["test"].points,
        {"a/b": bad.splits["test"].subsets["odd"]},
    )
    with pytest.raises(ValueError, match="subset name 'a/b'"):
        cache.save_dataset(bad, tmp_path / "v", {})
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("task", ["cathdet", "endovis"])
def test_a_validation_size_is_its_own_variant_with_the_same_train_and_test(
    tmp_path: Path, task: str
) -> None:
    plain = sources.prepare_dataset(task, "smoke", root=tmp_path)
    grown = sources.prepare_dataset(task, "smoke", root=tmp_path, validation_size=20)
    assert plain.directory.name == "synthetic-smoke"
    assert grown.directory.name == "synthetic-smoke-val20"
    assert len(plain.dataset.split("val")) == 8  # the smoke profile's
    assert len(grown.dataset.split("val")) == 20
    for name in ("train", "test"):
        assert torch.equal(plain.dataset.split(name).images, grown.dataset.split(name).images)
    prefix = grown.dataset.split("val").images[:8]
    assert torch.equal(prefix, plain.dataset.split("val").images)
    with pytest.raises(
        ValueError, match=r"validation_size 5 is below the profile's 8 .* at least 8"
    ):
        sources.prepare_dataset(task, "smoke", root=tmp_path, validation_size=5)
