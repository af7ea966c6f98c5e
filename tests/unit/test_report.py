"""`bench report` tables on runs with known metrics (means and deviations worked out by hand)."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from mlflow.entities import Metric, Param

from bench.cli.report_command import report as report_command
from bench.track.report import ReportError, build_report, markdown, summarise, write_report
from bench.track.tracking import ROLE_TAG, ensure_experiment, open_store

T0 = 1_700_000_000_000  # ms; runs get increasing start times so "newest" is well defined


def add_run(
    client,
    experiment_id,
    order,
    *,
    method,
    lr,
    seed,
    status="FINISHED",
    outcome="finished",
    profile="quick",
    sigma=None,
    sigma_ref=256,
    metrics=None,
    kind=None,
    rule=None,
):
    tags = {
        ROLE_TAG: "cell",
        "cell_key": f"k{order}",
        "task": "cathdet",
        "method": method,
        "lr": f"{lr:g}",
        "seed": str(seed),
        "profile": profile,
        "outcome": outcome,
    }
    run = client.create_run(experiment_id, start_time=T0 + order, tags=tags)
    run_id = run.info.run_id
    params = {
        "schedule.kind": kind or ("adaloss" if sigma is None else "fixed"),
        "schedule.sigma": "null" if sigma is None else str(float(sigma)),
        "schedule.sigma_ref": str(sigma_ref),
        **{f"schedule.{key}": value for key, value in (rule or {}).items()},
    }
    history = [
        Metric(name, value, T0, epoch)
        for epoch, loss in enumerate((30.0, 20.0, 10.0), start=1)
        for name, value in (("val_distance", loss + seed), ("sigma_mean", 40.0 / epoch))
    ]
    final = [Metric(name, value, T0, 3) for name, value in (metrics or {}).items()]
    client.log_batch(
        run_id, metrics=history + final, params=[Param(k, v) for k, v in params.items()]
    )
    client.set_terminated(run_id, status)
    return run_id


@pytest.fixture
def store(tracking_uri: str) -> tuple[str, str]:
    """A cathdet experiment with known runs; returns (uri, parent run id)."""
    client = open_store(tracking_uri)
    exp = ensure_experiment(client, tracking_uri, "cathdet")
    add_run(
        client,
        exp,
        0,
        method="sigma5",
        lr=1e-3,
        seed=0,
        profile="smoke",
        sigma=5,
        metrics={"test_distance": 50.0},
    )
    add_run(
        client,
        exp,
        1,
        method="sigma5",
        lr=1e-3,
        seed=0,
        sigma=5,
        metrics={"test_distance": 100.0, "ntv_all": 9.0},
    )  # replaced by the newer run below
    add_run(
        client,
        exp,
        2,
        method="sigma5",
        lr=1e-3,
        seed=0,
        sigma=5,
        metrics={"test_distance": 2.0, "ntv_all": 3.0},
    )
    add_run(
        client,
        exp,
        3,
        method="sigma5",
        lr=1e-3,
        seed=1,
        sigma=5,
        metrics={"test_distance": 4.0, "ntv_all": 3.5},
    )
    add_run(
        client,
        exp,
        4,
        method="sigma5",
        lr=1e-3,
        seed=2,
        sigma=5,
        metrics={"test_distance": 9.0, "ntv_all": 4.0},
    )
    add_run(client, exp, 5, method="adaloss", lr=1e-4, seed=0, metrics={"test_distance": 1.5})
    add_run(
        client,
        exp,
        6,
        method="adaloss",
        lr=1e-4,
        seed=1,
        outcome="diverged",
        metrics={"diverged_epoch": 2.0},
    )
    add_run(client, exp, 7, method="adaloss", lr=1e-4, seed=2, status="FAILED", outcome="failed")
    add_run(
        client,
        exp,
        8,
        method="sigma25",
        lr=1e-3,
        seed=0,
        sigma=25,
        sigma_ref=512,
        metrics={"test_distance": 7.25},
    )
    parent = client.create_run(
        exp, start_time=T0 + 9, tags={ROLE_TAG: "parent", "profile": "quick"}
    )
    client.set_terminated(parent.info.run_id, "FINISHED")
    return tracking_uri, parent.info.run_id


def test_table_means_deviations_counts_and_paper_values(store: tuple[str, str]) -> None:
    uri, _ = store
    report = build_report(uri, "cathdet")
    assert report.profile == "quick"  # the newest cell run's
    table = report.table.set_index("method")
    # the shipped grid's method order: sigma5, sigma25, ..., adaloss
    assert list(report.table.method) == ["sigma5", "sigma25", "adaloss"]

    sigma5 = table.loc["sigma5"]
    assert sigma5["seeds"] == 3  # the older seed-0 run (100 px) is replaced by the newer one
    assert sigma5["test_distance"] == pytest.approx((2 + 4 + 9) / 3)
    # sample std: deviations -3, -1, 4 -> sqrt((9 + 1 + 16) / 2) = sqrt(13)
    assert sigma5["test_distance std"] == pytest.approx(math.sqrt(13))
    assert sigma5["ntv_all"] == pytest.approx(3.5)
    assert sigma5["ntv_all std"] == pytest.approx(0.5)  # deviations -0.5, 0, 0.5 -> sqrt(0.25)
    assert sigma5["test_distance paper"] == 87.05  # Table 1, sigma 5 at 256 px

    adaloss = table.loc["adaloss"]
    assert (adaloss["finished"], adaloss["diverged"], adaloss["failed"]) == (1, 1, 1)
    assert adaloss["seeds"] == 1 and adaloss["test_distance"] == 1.5
    assert math.isnan(adaloss["test_distance std"])  # one seed: no deviation
    assert adaloss["test_distance paper"] == 1.19 and adaloss["ntv_all paper"] == 2.80

    sigma25 = table.loc["sigma25"]
    assert math.isnan(sigma25["test_distance paper"])  # stated at 512 px: not the paper's cell

    text = markdown(report)
    assert "| sigma5 | 0.001 | 3 | 5.00 ± 3.61 *(paper: 87.05)* |" in text
    assert "| adaloss | 0.0001 | 1 | 1.50 *(paper: 1.19)* |" in text
    assert "| adaloss | 0.0001 | 1 | 1 | 1 | 0 |" in text  # outcomes: finished diverged failed


def test_profile_selects_runs(store: tuple[str, str]) -> None:
    uri, _ = store
    report = build_report(uri, "cathdet", profile="smoke")
    assert list(report.table.method) == ["sigma5"]
    assert report.table.loc[0, "test_distance"] == 50.0


def test_summarise_leaves_diverged_seeds_out_of_the_mean() -> None:
    records = pd.DataFrame(
        {
            "method": ["m", "m", "m"],
            "lr": [0.1, 0.1, 0.1],
            "seed": [0, 1, 2],
            "outcome": ["finished", "finished", "diverged"],
            "schedule": ["linear"] * 3,
            "sigma": [math.nan] * 3,
            "sigma_ref": [256.0] * 3,
            "paper_rule": [True] * 3,
            "run_id": ["a", "b", "c"],
            "test_distance": [1.0, 2.0, math.nan],
        }
    )
    row = summarise(records, ["test_distance"], "cathdet").iloc[0]
    assert (row["seeds"], row["diverged"]) == (2, 1)
    assert row["test_distance"] == 1.5
    assert row["test_distance std"] == pytest.approx(math.sqrt(0.5))
    assert math.isnan(row["test_distance paper"])  # the paper has no linear-decay number


def test_written_files_figures_and_parent_artifacts(store: tuple[str, str], tmp_path: Path) -> None:
    uri, parent_id = store
    report = build_report(uri, "cathdet")
    assert report.parent_run_id == parent_id
    written = write_report(report, tmp_path / "out", "json")
    assert [p.name for p in written] == [
        "summary.md",
        "summary.csv",
        "comparison.csv",
        "summary.json",
        "report.html",
    ]
    csv = pd.read_csv(tmp_path / "out" / "summary.csv")
    assert csv.set_index("method").loc["sigma5", "test_distance"] == pytest.approx(5.0)
    for figure in ("validation_per_epoch.png", "sigma_per_epoch.png"):
        assert (tmp_path / "out" / "figures" / figure).stat().st_size > 10_000
    logged = {a.path for a in report.client.list_artifacts(parent_id, "report")}
    assert {
        "report/summary.md",
        "report/summary.csv",
        "report/figures",
        "report/report.html",
    } <= logged


def test_adaloss_is_paired_with_the_best_fixed_sigma_of_its_lr(store: tuple[str, str]) -> None:
    uri, _ = store
    client = open_store(uri)
    exp = client.get_experiment_by_name("cathdet").experiment_id
    for order, (seed, distance) in enumerate(((0, 1.0), (1, 3.0)), start=10):
        add_run(
            client,
            exp,
            order,
            method="adaloss",
            lr=1e-3,
            seed=seed,
            metrics={"test_distance": distance},
        )
    report = build_report(uri, "cathdet")
    # lr 1e-3: sigma5 (mean 5) beats sigma25 (7.25); pairs are seeds 0 and 1 (2 - 1, 4 - 3);
    # lr 1e-4 has no finished fixed sigma, so no row
    (row,) = report.comparison.to_dict("records")
    assert (row["lr"], row["method"], row["reference"], row["pairs"]) == (
        1e-3,
        "adaloss",
        "sigma5",
        2,
    )
    assert row["difference_mean"] == pytest.approx(-1.0)
    assert row["verdict"] == "better"
    text = markdown(report)
    assert "## Adaptive schedules against the best fixed sigma" in text
    assert "| 0.001 | adaloss | sigma5 | 2.00 | 3.00 | -1.00 ± 0.00 | 2 |" in text


def test_a_cell_still_training_counts_as_running(store: tuple[str, str]) -> None:
    uri, _ = store
    client = open_store(uri)
    exp = client.get_experiment_by_name("cathdet").experiment_id
    tags = {
        ROLE_TAG: "cell",
        "cell_key": "k20",
        "task": "cathdet",
        "method": "sigma60",
        "lr": "0.001",
    }
    client.create_run(exp, start_time=T0 + 20, tags={**tags, "seed": "0", "profile": "quick"})
    row = build_report(uri, "cathdet").table.set_index("method").loc["sigma60"]
    assert (row["running"], row["killed"], row["seeds"]) == (1, 0, 0)


def test_cli_report_prints_and_writes(store: tuple[str, str], tmp_path: Path) -> None:
    uri, _ = store
    client = open_store(uri)
    adaloss = client.search_runs(
        [client.get_experiment_by_name("cathdet").experiment_id],
        "tags.method = 'adaloss' and tags.seed = '0'",
    )[0]
    png = tmp_path / "prediction_overlay.png"
    png.write_bytes(b"\x89PNG overlay")
    client.log_artifact(adaloss.info.run_id, str(png), "figures")
    out = tmp_path / "rep"
    result = CliRunner().invoke(
        report_command,
        ["--grid", "cathdet", "--format", "csv", "--out", str(out), "--tracking-uri", uri],
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0].startswith("method,lr,seeds,finished,diverged,failed")
    assert (out / "summary.md").exists()
    assert [p.name for p in (out / "overlays").iterdir()] == ["adaloss_lr0.0001_s0.png"]
    plain = tmp_path / "plain"
    args = ["--grid", "cathdet", "--out", str(plain), "--no-overlays", "--tracking-uri", uri]
    assert CliRunner().invoke(report_command, args).exit_code == 0
    assert (plain / "figures").is_dir() and not (plain / "overlays").exists()


def test_nothing_to_report_is_one_clear_line(tmp_path: Path, tracking_uri: str) -> None:
    with pytest.raises(ReportError, match=r"no MLflow store at .*; run `bench run --grid x`"):
        build_report(f"sqlite:///{tmp_path / 'absent' / 'mlflow.db'}", "x")
    with pytest.raises(ReportError, match=r"no experiment 'cathdet'"):
        build_report(tracking_uri, "cathdet")


def test_cli_reference_pairs_every_method_with_the_named_one(
    store: tuple[str, str], tmp_path: Path
) -> None:
    uri, _ = store
    args = ["--grid", "cathdet", "--out", str(tmp_path / "rep"), "--tracking-uri", uri]
    result = CliRunner().invoke(report_command, [*args, "--reference", "sigma25"])
    assert result.exit_code == 0, result.output
    # sigma25 has only seed 0 at lr 1e-3: sigma5's seed 0 (2.0) is its one pair; no row at 1e-4
    assert "## Every method against `sigma25`" in result.stdout
    assert "| 0.001 | sigma5 | sigma25 | 2.00 | 7.25 | -5.25 | 1 | - | - |" in result.stdout
    wrong = CliRunner().invoke(report_command, [*args, "--reference", "sigma52"])
    assert wrong.exit_code == 2
    assert "Error: --reference: no method 'sigma52' to compare against; the methods are" in (
        wrong.output
    )


def test_variants_of_the_paper_rule_get_no_paper_values(store: tuple[str, str]) -> None:
    uri, _ = store
    client = open_store(uri)
    exp = client.get_experiment_by_name("cathdet").experiment_id
    rules = {
        "literal": {"window": "3", "rho": "0.9", "max_step": "null", "unit": "epoch"},
        "max_step4": {"max_step": "4.0"},
        "iteration": {"window": "38", "unit": "iteration"},
        "unrestricted": {"restrict": "false"},
    }
    for order, (method, rule) in enumerate(rules.items(), start=10):
        metrics = {"test_distance": 3.0}
        add_run(client, exp, order, method=method, lr=1e-3, seed=0, metrics=metrics, rule=rule)
    table = build_report(uri, "cathdet").table.set_index("method")
    assert table.loc["literal", "test_distance paper"] == 1.19
    for variant in ("max_step4", "iteration", "unrestricted"):
        assert math.isnan(table.loc[variant, "test_distance paper"]), variant
    # the comparison lists methods as the grid does (sigma5 first), then the rest alphabetically
    compared = build_report(uri, "cathdet", reference="sigma25").comparison
    assert list(compared.method) == ["sigma5", "iteration", "literal", "max_step4", "unrestricted"]


def test_training_regime_of_the_best_fixed_sigma(store: tuple[str, str]) -> None:
    uri, _ = store
    report = build_report(uri, "cathdet")
    # lr 1e-3: sigma5 is best (mean 5 over seeds 0-2); its curves fall 30, 20, 10 (+ seed): the
    # best is the last epoch, and the last quarter (epoch 3) beats the earlier best (20 + seed)
    # by 10 / (20 + seed), far over 2 %: still improving.
    rows = report.regime.to_dict("records")
    assert [(r["method"], r["lr"], r["seed"]) for r in rows] == [
        ("sigma5", 1e-3, 0),
        ("sigma5", 1e-3, 1),
        ("sigma5", 1e-3, 2),
    ]
    assert [r["best"] for r in rows] == [10.0, 11.0, 12.0]
    assert {r["status"] for r in rows} == {"still improving"}
    text = markdown(report)
    assert "## Training regime of the best fixed sigma" in text
    # seed 1: tail gain 10 / 21 = 47.6 %, tail gap 0
    assert "| sigma5 | 0.001 | 1 | 11 (3/3) | 47.6 % | 0.0 % | still improving |" in text
    assert "**Warning:** 3 of 3 best fixed-sigma cells did not converge (still improving)" in text
