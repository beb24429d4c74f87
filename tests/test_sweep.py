"""Multirun sweeps end with a report; k-fold CV gets out-of-fold scores; Optuna and submitit."""

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from conftest import cli
from sklearn.metrics import accuracy_score, f1_score

from maskcls.errors import RunFolderError
from maskcls.report import main as report_main
from maskcls.report import write_report

ROOT = Path(__file__).parents[1]
TINY = ["data.synthetic=null", "data.image_size=[32,24]", "data.batch_size=16",
        "trainer.max_epochs=1", "trainer.accelerator=cpu", "callbacks.progress_bar.refresh_rate=0"]


def sweep(tmp_path: Path, synth_root: Path, *overrides: str, multirun: bool = True,
          returncode: int = 0) -> Path:
    out = tmp_path / "sweep"
    res = cli(*(["-m"] if multirun else []), f"data.root={synth_root}", *TINY,
              f"hydra.sweep.dir={out}", *overrides)
    assert res.returncode == returncode, res.stdout[-2000:] + res.stderr[-3000:]
    (tmp_path / "console.txt").write_text(res.stdout + res.stderr)
    if returncode:
        assert "job(s) failed" in res.stderr and "allow_failures=true" in res.stderr
    return out


def test_grid_sweep_survives_a_failing_job_and_reports(synth_root, tmp_path):
    out = sweep(tmp_path, synth_root, "loss=ce,focal", "optimizer.lr=0.001,not_a_number",
                "allow_failures=true")
    table = pd.read_csv(out / "summary.csv")
    assert len(table) == 4
    done, failed = table[table["status"] == "done"], table[table["status"] == "failed"]
    assert len(done) == 2 and len(failed) == 2
    assert (failed["optimizer.lr"] == "not_a_number").all()
    assert failed["error"].str.contains("ConfigError: optimizer.lr must be > 0").all()
    for job in failed["job"]:
        failure = json.loads((out / str(job) / "failure.json").read_text())
        assert "Traceback" in failure["traceback"]
    for job in done["job"]:
        assert (out / str(job) / "metrics.json").exists()
    # sorted by macro-F1, best marked, varying overrides as columns
    assert list(done["macro_f1"]) == sorted(done["macro_f1"], reverse=True)
    assert table.loc[0, "best"] == "*" and table["best"].eq("*").sum() == 1
    assert {"loss", "optimizer.lr", "acc", "f1_mask", "f1_gender", "f1_age",
            "best_epoch", "wall_s"} <= set(table.columns)
    md = (out / "summary.md").read_text()
    assert "2 done, 2 failed" in md
    assert (out / "summary.png").stat().st_size > 10_000


def test_a_sweep_with_a_failed_job_reports_then_exits_non_zero(synth_root, tmp_path):
    out = sweep(tmp_path, synth_root, "optimizer.lr=0.001,-1", returncode=1)
    assert "1 done, 1 failed" in (out / "summary.md").read_text()
    assert "optimizer.lr must be > 0" in (out / "1" / "failure.json").read_text()


def test_kfold_cv_rows_and_out_of_fold_score(synth_root, tmp_path):
    out = sweep(tmp_path, synth_root, "data.n_folds=2", "data.fold=range(2)", "loss=ce,focal")
    cv = pd.read_csv(out / "summary_cv.csv")
    assert len(cv) == 2 and set(cv["loss"]) == {"ce", "focal"}
    assert (cv["folds_done"] == 2).all()
    jobs = pd.read_csv(out / "summary.csv")
    for _, row in cv.iterrows():
        members = jobs[jobs["loss"] == row["loss"]]
        assert row["f1_mean"] == pytest.approx(members["macro_f1"].mean())
        preds = pd.concat(pd.read_csv(out / str(j) / "val_predictions.csv")
                          for j in members["job"])
        assert preds["path"].is_unique  # the folds' validation sets partition the images
        assert row["oof_images"] == len(preds) == 40 * 7
        present = sorted(set(preds["label"]) | set(preds["pred"]))
        assert row["oof_f1"] == pytest.approx(
            f1_score(preds["label"], preds["pred"], average="macro", labels=present))
        assert row["oof_acc"] == pytest.approx(accuracy_score(preds["label"], preds["pred"]))
        assert (out / f"oof_confusion_{int(row['config'])}.png").exists()
    assert "## Cross-validation" in (out / "summary.md").read_text()
    assert (out / "summary_epochs.png").stat().st_size > 5_000  # every job's curve


def test_report_on_a_half_finished_sweep(fold_runs, tmp_path, capsys):
    half = tmp_path / "half"
    shutil.copytree(fold_runs, half)
    (half / "1" / "metrics.json").unlink()
    for f in half.glob("summary*"):
        f.unlink()
    report_main([str(half)])
    table = pd.read_csv(half / "summary.csv")
    assert dict(zip(table["job"], table["status"], strict=True)) == {0: "done", 1: "unfinished"}
    assert "1 done, 1 unfinished" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="not a folder"):
        report_main([str(tmp_path / "missing")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunFolderError, match="no job folders"):
        write_report(tmp_path / "empty")


def test_optuna_search_runs_three_trials(synth_root, tmp_path):
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    out = sweep(tmp_path, synth_root, "hparams_search=optuna", "hydra.sweeper.n_trials=3",
                "hydra.sweeper.sampler.n_startup_trials=2", multirun=False)
    table = pd.read_csv(out / "summary.csv")
    assert len(table) == 3 and (table["status"] == "done").all()
    results = (out / "optimization_results.yaml").read_text()
    assert "best_value" in results
    best = float(results.split("best_value:")[1].split()[0])
    assert best == pytest.approx(table["macro_f1"].max(), abs=1e-6)
    console = (tmp_path / "console.txt").read_text()
    assert "[HYDRA] Launching" in console  # the sweep's own progress stays
    for chatter in ("A new study created", "alembic", "💡"):
        assert chatter not in console, chatter


def test_submitit_local_runs_jobs_as_processes(synth_root, tmp_path):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    out = sweep(tmp_path, synth_root, "hydra/launcher=local_processes", "loss=ce,focal")
    table = pd.read_csv(out / "summary.csv")
    assert len(table) == 2 and (table["status"] == "done").all()
    assert (out / ".submitit").is_dir()  # submitit's per-job process logs


def test_sweep_chart_fits_its_axis_and_places_the_cv_error_bar():
    import matplotlib.pyplot as plt
    from matplotlib.container import ErrorbarContainer

    from maskcls.analysis.plots import sweep_figure

    table = pd.DataFrame({"job": ["0", "1", "2", "3", "4"], "loss": ["ce", "ce", "focal",
                                                                     "focal", "f1"],
                          "status": ["done"] * 4 + ["failed"],
                          "macro_f1": [0.61, 0.63, 0.66, 0.70, None]})
    cv = pd.DataFrame({"loss": ["ce", "focal"], "f1_mean": [0.62, 0.68],
                       "f1_std": [0.01, 0.02], "oof_f1": [0.615, 0.69]})
    fig = sweep_figure(table, cv, ["loss"], "data.fold")
    try:
        jobs, folds = fig.axes
        lo, hi = jobs.get_xlim()
        # fitted: every score shown, differences of a few points not squeezed into 0..1
        assert 0.5 < lo < 0.61 and 0.70 < hi < 0.8
        lo, hi = folds.get_xlim()
        assert 0.5 < lo < 0.61 and 0.70 < hi < 0.8
        bars = [c for c in folds.containers if isinstance(c, ErrorbarContainer)]
        assert len(bars) == 1 and bars[0].get_label() == "fold mean +- std"
        marker, _, (segments,) = bars[0].lines
        xs, ys = marker.get_data()
        assert list(xs) == [0.62, 0.68]  # the markers at the fold means ...
        for (_, y0), (_, y1) in segments.get_segments():
            assert y0 == y1 and y0 in ys  # ... horizontal bars, mean -+ std, on their rows
        spans = sorted((round(s[0][0], 6), round(s[1][0], 6)) for s in segments.get_segments())
        assert spans == [(0.61, 0.63), (0.66, 0.70)]
        oof = [line for line in folds.get_lines() if line.get_label() == "out-of-fold"]
        assert list(oof[0].get_xdata()) == [0.615, 0.69]
        assert not set(oof[0].get_ydata()) & set(ys)  # on its own row, not over the bar
        legend = [t.get_text() for t in folds.get_legend().get_texts()]
        assert sorted(legend) == ["fold mean +- std", "out-of-fold"]
    finally:
        plt.close(fig)


def test_every_run_folder_has_a_learning_curve(fold_runs, tmp_path):
    from maskcls.analysis.plots import learning_curve_png

    for job in ("0", "1"):
        png = fold_runs / job / "learning_curve.png"
        assert png.exists() and png.stat().st_size > 10_000
    no_epochs = tmp_path / "metrics.csv"
    no_epochs.write_text("step,lr-AdamW\n0,0.001\n")
    assert learning_curve_png(no_epochs, tmp_path / "lc.png") is None
    assert not (tmp_path / "lc.png").exists()



def test_sweep_chart_wraps_long_labels_and_names_failures_only_when_there_are_some():
    import matplotlib.pyplot as plt

    from maskcls.analysis.plots import sweep_figure

    long = "a-very-long-backbone-name-from-timm_with_a_suffix " * 2
    table = pd.DataFrame({"job": ["0", "1"], "model.backbone": [long, "resnet18"],
                          "status": ["done", "done"], "macro_f1": [0.6, 0.7]})
    fig = sweep_figure(table, pd.DataFrame(), ["model.backbone"], "data.fold")
    try:
        ax = fig.axes[0]
        assert ax.get_title() == "jobs"  # nothing failed: no legend for failures
        ticks = [t.get_text() for t in ax.get_yticklabels()]
        assert all(len(line) <= 40 for t in ticks for line in t.splitlines())
        assert "".join(ticks[0].split()) == "".join(f"backbone={long}".split())  # all of it
    finally:
        plt.close(fig)
