"""Appended validation images (docs/data.md, "Validation noise"): the generators that draw their
splits from one stream add them after the test split, so the training and test images stay
byte-identical when the validation split grows."""

from __future__ import annotations

from dataclasses import replace
from types import ModuleType

import pytest
import torch

from bench.data.synthetic import cathdet, face300w


@pytest.mark.parametrize("generator", [cathdet, face300w], ids=["cathdet", "face300w"])
def test_appended_validation_images_leave_train_and_test_byte_identical(
    generator: ModuleType,
) -> None:
    smoke = generator.PROFILES["smoke"]
    plain = generator.generate(smoke, seed=4)
    grown = generator.generate(replace(smoke, n_val_appended=5), seed=4)
    for name in ("train", "test"):
        assert torch.equal(plain.split(name).images, grown.split(name).images)
        assert torch.equal(plain.split(name).points, grown.split(name).points)
        assert plain.split(name).subsets.keys() == grown.split(name).subsets.keys()
        for subset, indices in plain.split(name).subsets.items():
            assert torch.equal(indices, grown.split(name).subsets[subset])
    before, after = plain.split("val"), grown.split("val")
    assert len(after) == len(before) + 5
    assert torch.equal(after.images[: len(before)], before.images)
    assert torch.equal(after.points[: len(before)], before.points)
    # the appended images are new frames, not copies of the first ones
    assert not torch.equal(after.images[len(before) :], before.images[:5])
