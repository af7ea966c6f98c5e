"""The paper's published numbers, to print beside ours.

Source: Teixeira, Tamersoy, Singh, Kapoor, "Adaloss: Adaptive Loss Function for Landmark
Localization", arXiv:1908.01070 (2019): Tables 1 and 3, Sec. 4.1 and 4.3 (docs/RESULTS.md sets
them beside ours).
Units follow the report tables: pixels of the task's reference frame, and percentages for NME,
precision and recall.

A number belongs to a schedule (fixed sigma in pixels of the paper's 256 x 256 frame, or Adaloss),
not to one of our method labels, so a user's grid with other labels still lines up. The paper
reports one number per method, without a per-learning-rate breakdown for CathDet, so the report
shows it beside every learning rate of that method.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from bench.run.schedule import PAPER_RULE

TABLE1 = "Teixeira et al. 2019, Table 1 (CathDet)"
TABLE3 = "Teixeira et al. 2019, Table 3 (300-W)"
ENDOVIS = "Teixeira et al. 2019, Sec. 4.3 (EndoVis'15, full test set)"
CATHDET_TEXT = "Teixeira et al. 2019, Sec. 4.1 (CathDet, NTV)"


@dataclass(frozen=True)
class PaperNumber:
    """One published value.

    schedule: "fixed" or "adaloss" for our methods; another name ("SAN", "Dlib") for a method of
    the paper's comparison that this benchmark does not train. sigma: the fixed sigma at
    sigma_ref 256 (None otherwise).
    """

    task: str
    schedule: str
    sigma: float | None
    metric: str
    value: float
    source: str


def _cathdet_distance(sigma: float | None, value: float) -> PaperNumber:
    schedule = "adaloss" if sigma is None else "fixed"
    return PaperNumber("cathdet", schedule, sigma, "test_distance", value, TABLE1)


def _face_nme(schedule: str, common: float, challenging: float, full: float) -> list[PaperNumber]:
    return [
        PaperNumber("face300w", schedule, None, f"test_nme/{subset}", value, TABLE3)
        for subset, value in (("common", common), ("challenging", challenging), ("full", full))
    ]


PAPER_NUMBERS: tuple[PaperNumber, ...] = (
    _cathdet_distance(5.0, 87.05),
    _cathdet_distance(25.0, 19.27),
    _cathdet_distance(40.0, 8.71),
    _cathdet_distance(60.0, 11.46),
    _cathdet_distance(None, 1.19),
    PaperNumber("cathdet", "adaloss", None, "ntv_all", 2.80, CATHDET_TEXT),
    PaperNumber("cathdet", "adaloss", None, "ntv_last", 1.68, CATHDET_TEXT),
    # the text says "about 5 px": an approximate value, not a table entry
    PaperNumber("cathdet", "adaloss", None, "sigma_final_mean", 5.0, CATHDET_TEXT),
    *_face_nme("adaloss", 2.76, 5.61, 3.31),
    *_face_nme("SAN", 3.34, 6.60, 3.98),
    *_face_nme("Dlib", 4.38, 19.39, 7.32),
    PaperNumber("endovis", "adaloss", None, "test_recall/left_clasper/full", 95.56, ENDOVIS),
    PaperNumber("endovis", "adaloss", None, "test_precision/left_clasper/full", 90.50, ENDOVIS),
    PaperNumber("endovis", "adaloss", None, "test_distance/left_clasper/full", 6.83, ENDOVIS),
)

NOTES = {
    "cathdet": "The paper compares the smoothness of the learned filters: NTV all 3.03 and last "
    "1.83 for a fixed-sigma baseline against 2.80 and 1.68 for Adaloss; Adaloss's final sigma is "
    "about 5 px.",
    "face300w": "SAN and Dlib are the paper's comparison methods; this benchmark does not train "
    "them.",
    "endovis": "The paper reports the left clasper on the full test set only.",
}


def follows_paper_rule(params: Mapping[str, str]) -> bool:
    """Whether a cell's MLflow params (`schedule.<key>` strings) give the paper's Adaloss rule;
    schedules other than Adaloss have no rule to differ in (True). A missing key counts as its
    default, which is the paper's."""
    if params.get("schedule.kind") != "adaloss":
        return True
    for key, value in PAPER_RULE.items():
        text = params.get(f"schedule.{key}")
        # CellConfig.to_params logs strings as they are and everything else as JSON
        if text is not None and (text if isinstance(value, str) else json.loads(text)) != value:
            return False
    return True


def paper_value(
    task: str, schedule: str, sigma: float | None, sigma_ref: int | None, metric: str
) -> float | None:
    """The paper's value of `metric` for one of our cells' schedules, or None.

    A fixed sigma matches only when stated at the paper's resolution (sigma_ref 256).
    """
    for number in PAPER_NUMBERS:
        if (number.task, number.schedule, number.metric) != (task, schedule, metric):
            continue
        if schedule == "fixed" and (sigma_ref != 256 or number.sigma != sigma):
            continue
        return number.value
    return None


def comparison_methods(task: str) -> dict[str, dict[str, float]]:
    """The paper's other methods for `task`: name -> {metric: value} (SAN, Dlib for faces)."""
    methods: dict[str, dict[str, float]] = {}
    for number in PAPER_NUMBERS:
        if number.task == task and number.schedule not in ("fixed", "adaloss", "linear"):
            methods.setdefault(number.schedule, {})[number.metric] = number.value
    return methods


def sources(task: str) -> list[str]:
    """The citations of the numbers shown for `task`, in order."""
    return list(dict.fromkeys(n.source for n in PAPER_NUMBERS if n.task == task))
