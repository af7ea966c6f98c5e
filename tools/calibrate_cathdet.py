"""Is the quick CathDet profile learnable? Train one neutral cell per generator variant.

The quick profile (64 x 64) must keep the paper task's character: a thin catheter whose tip a
U-Net can find. This script trains the same cell on variants of the quick generator and prints
the test distance next to the "always predict the frame centre" baseline. The cell is a fixed
sigma of 15 px (of the 256 frame) that is in no shipped grid, and Adaloss is never trained here,
so the calibration cannot favour either side of the comparison it feeds.

    python tools/calibrate_cathdet.py [--variants binned,shipped,shipped_no_wires] [--epochs 30]
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from adaloss.metrics import point_error
from bench.data.sources import load_dataset
from bench.data.synthetic import cathdet
from bench.run.cell import CellConfig
from bench.run.schedule import ScheduleConfig
from bench.run.trainer import train_cell
from bench.tasks.base import to_reference

QUICK = cathdet.PROFILES["quick"]

# name -> overrides of the shipped quick profile's parameters
VARIANTS: dict[str, dict[str, Any]] = {
    # the catheter at its physical 1-2 px of the 256 frame, binned to a sub-pixel wire at 64 px
    "binned": {"catheter_width": (1.0, 2.0)},
    # shipped: the catheter and wires are 1-2 px wide at the network's input, as at 256
    "shipped": {},
    "shipped_no_wires": {"wire_probability": 0.0},
}


def centre_baseline(root: Path) -> float:
    dataset = load_dataset("cathdet", profile="quick", root=root)
    test = dataset.split("test")
    h, w = dataset.image_size
    centre = torch.tensor([(w - 1) / 2, (h - 1) / 2]).expand_as(test.points)
    errors = point_error(
        to_reference(centre, test, dataset), to_reference(test.points, test, dataset)
    )
    return float(errors.mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--sigma", type=float, default=15.0)
    args = parser.parse_args()
    for name in args.variants.split(","):
        cathdet.PROFILES["quick"] = dataclasses.replace(QUICK, **VARIANTS[name])
        with tempfile.TemporaryDirectory() as root:
            cell = CellConfig(
                grid="calibration",
                task="cathdet",
                method=f"sigma{args.sigma:g}",
                schedule=ScheduleConfig(kind="fixed", sigma=args.sigma),
                lr=1e-3,
                seed=0,
                profile="quick",
                epochs=args.epochs,
                batch_size=16,
            )
            started = time.perf_counter()
            result = train_cell(cell, data_root=Path(root))
            metrics = result.final_metrics
            print(
                f"{name}: test distance mean {metrics['test_distance']:.1f} px, median "
                f"{metrics['test_distance_median']:.1f} px, within 5 px "
                f"{metrics['test_within_5px']:.1f} %; centre baseline "
                f"{centre_baseline(Path(root)):.1f} px ({time.perf_counter() - started:.0f} s)",
                flush=True,
            )


if __name__ == "__main__":
    main()
