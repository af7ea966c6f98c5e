"""`bench report`'s EndoVis per-clasper tables and the per-group sigma curves and figures (the
paper's Figs 6-7), on runs whose values are set by hand, and `select_runs`' choice of run."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from mlflow.entities import Metric, Param

from bench.track.orphans import SUPERSEDED_TAG
from bench.track.report import build_report, markdown, run_curves, select_runs, write_figures
from bench.track.tracking import ROLE_TAG, ensure_experiment, open_store

T0 = 1_700_000_000_000


def add_endovis_run(client, experiment_id, order, *, method, seed, sigma, metrics, groups=None):
    """A FINISHED EndoVis cell run; `groups` (landmark -> (group, sigma per epoch)) adds the
    per_landmark.csv artifact and the per-landmark sigma histories an adaptive run logs."""
    tags = {
        ROLE_TAG: "cell",
        "cell_key": f"k{order}",
        "task": "endovis",
        "method": method,
        "lr": "0.001",
        "seed": str(seed),
        "profile": "quick",
        "outcome": "finished",
    }
    run_id = client.create_run(experiment_id, start_time=T0 + order, tags=tags).info.run_id
    params = {
        "schedule.kind": "fixed" if sigma else "adaloss",
        "schedule.sigma": str(float(sigma)) if sigma else "null",
        "schedule.sigma_ref": "720",
    }
    history = [Metric("val_error", 10.0 - epoch, T0, epoch) for epoch in (1, 2, 3)]
    history += [Metric(name, value, T0, 3) for name, value in metrics.items()]
    for landmark, (_, sigmas) in (groups or {}).items():
        history += [
            Metric(f"sigma/{landmark}", value, T0, epoch) for epoch, value in enumerate(sigmas, 1)
        ]
    client.log_batch(run_id, metrics=history, params=[Param(k, v) for k, v in params.items()])
    if groups:
        table = Path(f"per_landmark_{order}")  # the fixture works in tmp_path
        table.mkdir(exist_ok=True)
        rows = [f"{landmark},{group}" for landmark, (group, _) in groups.items()]
        (table / "per_landmark.csv").write_text("landmark,group\n" + "\n".join(rows) + "\n")
        client.log_artifact(run_id, str(table / "per_landmark.csv"))
    client.set_terminated(run_id, "FINISHED")
    return run_id


def clasper_metrics(left_f1: float, right_f1: float) -> dict[str, float]:
    return {
        "test_f1/left_clasper/full": left_f1,
        "test_precision/left_clasper/full": left_f1 + 1.0,
        "test_f1/right_clasper/full": right_f1,
    }


@pytest.fixture
def endovis_store(tracking_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.chdir(tmp_path)
    client = open_store(tracking_uri)
    exp = ensure_experiment(client, tracking_uri, "endovis")
    add_endovis_run(
        client, exp, 0, method="sigma20", seed=0, sigma=20, metrics=clasper_metrics(60, 40)
    )
    add_endovis_run(
        client, exp, 1, method="sigma20", seed=1, sigma=20, metrics=clasper_metrics(70, 50)
    )
    groups = {
        "left_clasper": ("claspers", [64.0, 60.0, 56.0]),
        "right_clasper": ("claspers", [64.0, 62.0, 50.0]),
        "shaft": ("tool", [64.0, 64.0, 63.0]),
    }
    add_endovis_run(
        client, exp, 2, method="adaloss", seed=0, sigma=None, metrics=clasper_metrics(20, 10),
        groups=groups,
    )  # fmt: skip
    return tracking_uri


def table_under(text: str, heading: str) -> dict[str, dict[str, str]]:
    """The markdown table below `## heading`: method -> column -> cell text."""
    lines = text.split(f"## {heading}\n\n")[1].split("\n\n")[0].splitlines()
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]
    return {row[0]: dict(zip(header, row, strict=True)) for row in rows}


def test_endovis_report_has_one_table_per_clasper_with_short_names(endovis_store: str) -> None:
    text = markdown(build_report(endovis_store, "endovis"))
    left, right = table_under(text, "left_clasper"), table_under(text, "right_clasper")
    # twelve metrics per clasper (4 kinds x 3 subsets), named without the clasper
    assert list(left["sigma20"])[3:] == list(right["sigma20"])[3:]
    assert len(left["sigma20"]) == 3 + 12 and not any("clasper" in c for c in left["sigma20"])
    # sigma20: left F1 (60 + 70) / 2 = 65, std of {60, 70} = 7.07; precision 66 +- 7.07;
    # right F1 (40 + 50) / 2 = 45
    assert left["sigma20"]["seeds"] == "2"
    assert left["sigma20"]["f1 full"] == "65.00 ± 7.07"
    assert left["sigma20"]["precision full"] == "66.00 ± 7.07"
    assert left["sigma20"]["recall full"] == "-"  # not logged
    assert right["sigma20"]["f1 full"] == "45.00 ± 7.07"
    assert right["sigma20"]["precision full"] == "-"
    assert left["adaloss"]["f1 full"].startswith("20.00") and right["adaloss"]["f1 full"] == "10.00"


def test_group_sigma_is_the_mean_over_each_group_s_landmarks(endovis_store: str) -> None:
    report = build_report(endovis_store, "endovis")
    adaptive = next(run for run in select_runs_of(report) if run.data.tags["method"] == "adaloss")
    curves = run_curves(report.client, adaptive, "val_error")
    assert curves.sigma_groups == {
        "claspers": ([1.0, 2.0, 3.0], [64.0, 61.0, 53.0]),  # (64+64)/2, (60+62)/2, (56+50)/2
        "tool": ([1.0, 2.0, 3.0], [64.0, 64.0, 63.0]),
    }
    fixed = next(run for run in select_runs_of(report) if run.data.tags["method"] == "sigma20")
    assert run_curves(report.client, fixed, "val_error").sigma_groups == {}


def test_a_group_figure_is_drawn_for_the_adaptive_run_only(
    endovis_store: str, tmp_path: Path
) -> None:
    report = build_report(endovis_store, "endovis")
    write_figures(report, tmp_path / "out", overlays=False)
    drawn = sorted(path.name for path in (tmp_path / "out" / "figures").glob("sigma_per_group_*"))
    assert drawn == ["sigma_per_group_adaloss_lr0.001_s0.png"]
    assert (tmp_path / "out" / "figures" / drawn[0]).stat().st_size > 10_000


def select_runs_of(report):
    return select_runs(
        report.client.search_runs([report.client.get_experiment_by_name("endovis").experiment_id])
    )


def fake_run(method: str, seed: int, status: str, *, superseded: bool = False):
    tags = {"method": method, "lr": "0.001", "seed": str(seed)}
    if superseded:
        tags[SUPERSEDED_TAG] = "1"
    return SimpleNamespace(data=SimpleNamespace(tags=tags), info=SimpleNamespace(status=status))


def test_select_runs_prefers_an_older_finished_run_to_a_newer_failed_one() -> None:
    newest_failed = fake_run("a", 0, "FAILED")
    older_finished = fake_run("a", 0, "FINISHED")
    oldest_finished = fake_run("a", 0, "FINISHED")
    newer_finished = fake_run("a", 1, "FINISHED")
    older_for_seed_1 = fake_run("a", 1, "FINISHED")
    only_failed = fake_run("b", 0, "FAILED")
    older_failed = fake_run("b", 0, "FAILED")
    superseded = fake_run("c", 0, "FINISHED", superseded=True)
    runs = [
        newest_failed,
        newer_finished,
        older_finished,
        only_failed,
        superseded,
        oldest_finished,
        older_for_seed_1,
        older_failed,
    ]  # fmt: skip  (newest first, as the store lists them)
    chosen = select_runs(runs)
    assert len(chosen) == 3
    assert chosen[0] is older_finished
    assert chosen[1] is newer_finished
    assert chosen[2] is only_failed
