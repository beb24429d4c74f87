"""The benchmark scripts run end to end and print their tables (tiny settings; the figures
themselves are for the README, measured on a quiet machine)."""

from pathlib import Path

import numpy as np
import pytest

from benchmarks import predict_speed, train_speed


def test_train_speed_table_takes_the_gpu_settings_through_to_train_py(tmp_path, capsys):
    """Every row of the table, the compute limit against itself, and --precision /
    --channels-last reaching the raw loops and maskcls's Trainer alike (bf16-mixed here:
    autocast runs on a CPU too; 16-mixed and cuda on the GPU machine)."""
    out = tmp_path / "train.md"
    rows = train_speed.main(["--sizes", "32x24", "--epochs", "4", "--persons", "8",
                             "--batch", "16", "--precision", "bf16-mixed", "--channels-last",
                             "--data-dir", str(tmp_path), "--out", str(out)])
    table = out.read_text()
    for what in ("compute limit", "maskcls", "maskcls: head=multi mixup cutmix zoom",
                 "plain reference", "loader: maskcls", "loader: plain PIL"):
        assert f"| 32x24 | {what} |" in table
    assert {r["what"] for r in rows} >= {"compute limit", "maskcls", "plain reference"}
    row = next(ln for ln in table.splitlines() if ln.startswith("| 32x24 | compute limit |"))
    assert row.split("|")[5].strip() == "1.00"  # the limit against itself
    assert "wrote" in capsys.readouterr().out
    assert "resnet18 on CPU, bf16-mixed, channels-last" in table
    config = (tmp_path / "bench-runs" / "32x24" / "config.yaml").read_text()
    assert "precision: bf16-mixed" in config and "channels_last: true" in config


def test_train_speed_names_its_rows_when_only_asks_for_another(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        train_speed.main(["--only", "compute limit,maskcl", "--data-dir", str(tmp_path)])
    assert e.value.code == 2
    assert "no row named 'maskcl'" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_gpu_check_runs_its_steps_as_a_dry_run_on_the_cpu(tmp_path):
    from benchmarks import gpu_check

    out = tmp_path / "gpu.md"
    rows = gpu_check.main([
        "--device", "cpu", "--precision", "bf16-mixed", "--sizes", "32x24",
        "--speed-persons", "8", "--batch", "16", "--persons", "12", "--eval-persons", "2",
        "--epochs", "1", "--override", "data.image_size=[32,24]",
        "--override", "data.batch_size=8", "--work", str(tmp_path), "--out", str(out)])
    table = out.read_text()
    assert table.startswith("GPU check on CPU")
    steps = [r[0] for r in rows]
    assert steps == ["train_speed 32x24: compute limit", "train_speed 32x24: maskcls",
                     "train.py experiment=competition, 1 epochs", "predict.py tta=true",
                     "estimate: one experiment=competition fold on the real data"]
    assert "x 2700/12 people x 15 epochs" in rows[-1][2]
    assert "14 eval images; eval macro-F1" in table
    assert (tmp_path / "submission.csv").exists()
    assert (tmp_path / "train_speed.md").exists()


def test_predict_speed_table(tmp_path):
    out = tmp_path / "predict.md"
    flags = ["--eval-persons", "4", "--size", "32x24", "--repeats", "1",
             "--data-dir", str(tmp_path), "--out", str(out)]
    predict_speed.main(flags)
    table = Path(out).read_text()
    assert "| raw batched inference (preloaded tensors) |" in table
    assert "| maskcls predict (decode + predict + write) |" in table
    assert "28 eval images" in table
    # the run it times is made once and kept, while it is what the config makes today
    ckpt = tmp_path / "bench-runs" / "predict-32x24" / "checkpoints" / "best.ckpt"
    stamp = ckpt.stat().st_mtime_ns
    predict_speed.main(flags)
    assert ckpt.stat().st_mtime_ns == stamp
    config = ckpt.parents[1] / "config.yaml"
    config.write_text(config.read_text().replace("backbone: resnet18", "backbone: resnet34"))
    predict_speed.main(flags)
    assert ckpt.stat().st_mtime_ns != stamp and "backbone: resnet18" in config.read_text()


def test_quality_table(tmp_path, capsys):
    from benchmarks import quality

    out = tmp_path / "quality.md"
    results = quality.main([
        "--persons", "16", "--eval-persons", "3", "--trees", "5:1.5:1,6:1:0:2:1", "--budget", "60",
        "--only", "default,quick,quick + calibration", "--work", str(tmp_path),
        "--out", str(out), "--override", "data.image_size=[32,24]",
        "--override", "trainer.max_epochs=1", "--override", "data.batch_size=16"])
    assert [r["name"] for r in results] == ["default", "quick", "quick + calibration"]
    table = out.read_text()
    assert ("2 held-out trees (seed, difficulty, framing, style st, 60+ overlap o: s5 d1.5 f1, "
            "s6 d1 f0 st2 o1)") in table
    assert "16 training / 3 eval people each" in table
    assert len(list(tmp_path.glob("tree-s*"))) == 2
    for r in results:
        assert r["trees"] == 2 and len(r["per_tree"]) == 2 and r["epochs"] == [1]
        assert r["f1"] == pytest.approx(np.mean(r["per_tree"]))
        assert r["f1_std"] == pytest.approx(np.std(r["per_tree"], ddof=1))
        assert all(0 <= f <= 1 for f in r["per_tree"])
        assert f"| {r['name']} | {r['f1']:.4f} ± {r['f1_std']:.4f} |" in table
        # beside each score, what the tree allows (the variable reader) and the share of it
        assert 0 < r["ceiling"] <= 1 and r["share"] == pytest.approx(np.nanmean(
            [f / c for f, c in zip(r["per_tree"], r["per_tree_ceiling"], strict=True)]))
    assert results[2]["wall"] is None  # calibration on: the quick run, predicted again
    assert "wrote" in capsys.readouterr().out
    default, quick = results[0], results[1]
    paired = np.subtract(default["per_tree"], quick["per_tree"])
    assert default["vs_quick"] == pytest.approx(paired.mean())
    assert f"| {default['vs_quick']:+.4f} ± {default['vs_quick_std']:.4f} |" in table
    assert "vs_quick" not in quick
    # --reuse scores the finished runs again instead of retraining them
    run = next(tmp_path.glob("runs/tree-s5*/quick"))
    stamp = (run / "metrics.json").stat().st_mtime_ns
    reuse = ["--persons", "16", "--eval-persons", "3", "--trees", "5:1.5:1,6:1:0:2:1",
             "--budget", "60", "--reuse", "--only", "quick", "--work", str(tmp_path),
             "--out", str(tmp_path / "again.md"), "--override", "data.image_size=[32,24]",
             "--override", "trainer.max_epochs=1", "--override", "data.batch_size=16"]
    again = quality.main(reuse)
    assert again[0]["per_tree"] == quick["per_tree"]
    assert (run / "metrics.json").stat().st_mtime_ns == stamp
    capsys.readouterr()
    # ... but not a run the row no longer composes to (here: one trained before the
    # experiment moved to another backbone), whose score would be another recipe's
    config = run / "config.yaml"
    config.write_text(config.read_text().replace("backbone: resnet10t", "backbone: resnet18"))
    quality.main(reuse)
    assert "trained with another config than the row 'quick' composes now" in \
        capsys.readouterr().out
    assert (run / "metrics.json").stat().st_mtime_ns != stamp
    assert "backbone: resnet10t" in config.read_text()

    # --seeds: every row from each seed, paired with quick seed by seed; the config's own seed
    # (42) is the run above, reused, and seed 43 trains beside it
    stamp = (run / "metrics.json").stat().st_mtime_ns
    seeded = quality.main(["--persons", "16", "--eval-persons", "3", "--trees", "5:1.5:1",
                           "--budget", "60", "--reuse", "--only", "default,quick",
                           "--seeds", "42,43", *reuse[reuse.index("--work"):]])
    default, quick = seeded
    assert (default["trees"], default["runs"]) == (1, 2)
    assert sorted(p.name for p in run.parent.iterdir()) == [
        "default", "default-seed43", "quick", "quick-seed43"]
    assert "seed: 43" in (run.parent / "quick-seed43" / "config.yaml").read_text()
    assert (run / "metrics.json").stat().st_mtime_ns == stamp  # seed 42: the run above
    assert default["per_tree"] == [pytest.approx(np.mean(default["per_run"]))]
    paired = np.subtract(default["per_run"], quick["per_run"])
    assert default["vs_quick"] == pytest.approx(paired.mean())
    assert default["ahead"] == int((paired > 0).sum())
    table = (tmp_path / "again.md").read_text()
    assert f"({default['ahead']} of 2 ahead)" in table
    assert "trained from seeds 42, 43" in table and "The seed alone moves quick by" in table
    for bad, says in ((["--seeds", "42,x"], "comma-separated whole numbers"),
                      (["--seeds", "42,42"], "names a seed twice"),
                      (["--seeds", "42,43", "--only", "quick,quick, seed 43"],
                       "'quick, seed 43' sets its own")):
        with pytest.raises(SystemExit):
            quality.main(["--work", str(tmp_path / "none"), *bad])
        assert says in capsys.readouterr().err


def test_quality_refuses_a_malformed_tree(tmp_path, capsys):
    from benchmarks import quality

    with pytest.raises(SystemExit) as e:
        quality.main(["--trees", "21:1.5", "--work", str(tmp_path)])
    assert e.value.code == 2
    assert "seed:difficulty:framing" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # a row name with its comma is one name
        quality.main(["--only", "quick,quick, seed 4", "--work", str(tmp_path)])
    assert "no row named 'quick, seed 4'" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())  # nothing generated


def test_faces_table(tmp_path):
    from benchmarks import faces

    out = tmp_path / "faces.md"
    scores = faces.main(["--persons", "2", "--work", str(tmp_path), "--out", str(out)])
    table = out.read_text()
    for name, n in (("astronaut", 1), ("LFW faces + mask", 100), ("synthetic, mask worn", 10),
                    ("synthetic, mask none", 2)):
        for det in ("haar", "mtcnn"):
            assert f"| {name} | {det} | {n} |" in table
    assert scores["iou"].between(0, 1).all()
    # the bare astronaut: both detectors find the face where it was marked
    bare = scores[scores["set"] == "astronaut"]
    assert bare["found"].all() and (bare["iou"] > 0.6).all()


def test_label_issue_benchmark_measures_the_finder_on_the_style_asked_for(tmp_path, monkeypatch):
    """--style and --age-overlap reach the tree the finder is measured on, and --no-retrain
    writes neither the clean twin nor any retraining (the sweeps and the finder are stood in
    for: the finder here ranks exactly the injected people first)."""
    import pandas as pd

    from benchmarks import label_issues, run_python

    calls = []

    def fake(*args: str) -> float:
        calls.append(args)
        if args[:2] == ("-m", "maskcls.synth"):
            return run_python(*args)  # the real generator: the style must be accepted
        if args[0] == "train.py":
            sweep = Path(next(a for a in args if a.startswith("hydra.sweep.dir=")).split("=")[1])
            sweep.mkdir(parents=True)
            (sweep / "summary.csv").write_text("fold,f1\n")
            folds = int(next(a for a in args if a.startswith("data.n_folds=")).split("=")[1])
            for k in range(folds):  # each job records its config, as train.py's do
                (sweep / str(k)).mkdir()
                (sweep / str(k) / "config.yaml").write_text(
                    f"data:\n  n_folds: {folds}\n  fold: {k}\n  split_seed: 42\n")
            return 0.0
        out = Path(args[args.index("--out") + 1])
        truth = pd.read_csv(tmp_path / "work" / "errors" / "label_errors.csv", dtype=str)
        truth.assign(score=1.0)[["person_id", "field", "score"]].to_csv(
            out / "label_issues.csv", index=False)
        return 0.0

    monkeypatch.setattr(label_issues, "run_python", fake)
    out = tmp_path / "li.md"
    flags = ["--persons", "20", "--eval-persons", "3", "--errors", "0.3", "--folds", "2",
             "--model-seeds", "42", "--age-overlap", "1", "--no-retrain",
             "--work", str(tmp_path / "work"), "--out", str(out)]
    label_issues.main([*flags, "--style", "2", "--override", "data.age_sigma=6"])
    synth = [c for c in calls if c[:2] == ("-m", "maskcls.synth")]
    assert len(synth) == 1  # the tree with errors only
    # --override reaches the sweep, and the table says what the finder was measured with
    sweep = [c for c in calls if c[0] == "train.py"]
    assert len(sweep) == 1 and "data.age_sigma=6" in sweep[0]
    assert synth[0][synth[0].index("--style") + 1] == "2"
    truth = pd.read_csv(tmp_path / "work" / "errors" / "truth.csv")
    assert set(truth["style"]) == {2}
    assert not (tmp_path / "work" / "clean").exists()
    assert not (tmp_path / "work" / "runs").exists()
    table = out.read_text()
    assert "style 2, 60+ overlap 1" in table and "eval macro-F1" not in table
    assert "every run with data.age_sigma=6" in table
    fields = {ln.split("|")[1].strip(): ln.split("|")[3].strip() for ln in table.splitlines()
              if ln.startswith("| ") and not ln.startswith(("| field", "| ---"))}
    assert fields and set(fields.values()) == {"1.00"}  # the perfect ranking, read back
    # --reuse keeps the tree only if these flags drew it, and says which differ
    calls.clear()
    with pytest.raises(SystemExit, match=r"drawn with style 2 \(asked: 3\)"):
        label_issues.main([*flags, "--style", "3", "--reuse"])
    assert not calls
    # ... and a sweep only if it recorded the config experiment=quick composes now (the
    # stand-in sweep recorded none), so it is trained again; the tree is kept
    label_issues.main([*flags, "--style", "2", "--reuse"])
    assert [c[0] for c in calls] == ["train.py", "-m", "-m"]
    # a key the benchmark sets itself is refused before anything runs
    calls.clear()
    for bad in ("seed=7", "data.fold=1", "data.age_sigma"):
        with pytest.raises(SystemExit):
            label_issues.main([*flags, "--style", "2", "--reuse", "--override", bad])
    assert not calls
    # a tree whose drawing was cut short (no synthetic.json) is named, not read
    (tmp_path / "work" / "errors" / "synthetic.json").unlink()
    with pytest.raises(SystemExit, match="has no synthetic.json"):
        label_issues.main([*flags, "--style", "2", "--reuse"])
