"""The benchmark scripts run end to end and print their tables (tiny settings; the figures
themselves are for the README, measured on a quiet machine)."""

from pathlib import Path

from benchmarks import predict_speed, train_speed


def test_train_speed_table(tmp_path, capsys):
    out = tmp_path / "train.md"
    train_speed.main(["--sizes", "32x24", "--epochs", "4", "--persons", "8", "--batch", "16",
                      "--data-dir", str(tmp_path), "--out", str(out)])
    table = out.read_text()
    for what in ("compute limit", "maskcls", "maskcls: head=multi mixup cutmix zoom",
                 "plain reference", "loader: maskcls",
                 "loader: plain PIL"):
        assert f"| 32x24 | {what} |" in table
    row = next(ln for ln in table.splitlines() if ln.startswith("| 32x24 | compute limit |"))
    assert row.split("|")[5].strip() == "1.00"  # the limit against itself
    assert "wrote" in capsys.readouterr().out


def test_predict_speed_table(tmp_path):
    out = tmp_path / "predict.md"
    predict_speed.main(["--eval-persons", "4", "--size", "32x24", "--repeats", "1",
                        "--data-dir", str(tmp_path), "--out", str(out)])
    table = Path(out).read_text()
    assert "| raw batched inference (preloaded tensors) |" in table
    assert "| maskcls predict (decode + predict + write) |" in table
    assert "28 eval images" in table


def test_quality_table(tmp_path, capsys):
    from benchmarks import quality

    out = tmp_path / "quality.md"
    results = quality.main([
        "--persons", "16", "--eval-persons", "3", "--seed", "5", "--budget", "60",
        "--only", "default,quick,quick + calibration", "--work", str(tmp_path),
        "--out", str(out), "--override", "data.image_size=[32,24]",
        "--override", "trainer.max_epochs=1", "--override", "data.batch_size=16"])
    assert [r["name"] for r in results] == ["default", "quick", "quick + calibration"]
    table = out.read_text()
    assert "seed 5, difficulty 1.5, framing 1.0, 16 training / 3 eval people" in table
    for r in results:
        assert 0 <= r["f1"] <= 1 and r["epochs"] == 1
        assert f"| {r['name']} | {r['f1']:.4f} |" in table
    assert results[2]["wall"] is None  # calibration on: the quick run, predicted again
    assert "wrote" in capsys.readouterr().out


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
