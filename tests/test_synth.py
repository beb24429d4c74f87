import hashlib

import numpy as np
import pandas as pd
import pytest

from maskcls import labels
from maskcls.data import catalog as cat
from maskcls.synth import SynthConfig, generate
from maskcls.synth.__main__ import main as synth_main
from maskcls.synth.population import sample_people


def _digest(root):
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def test_same_seed_same_bytes_other_seed_other_tree(tmp_path):
    cfg = SynthConfig(persons=6, eval_persons=2, seed=3, width=32, height=40)
    a = generate(tmp_path / "a", cfg, workers=1)
    b = generate(tmp_path / "b", cfg, workers=2)  # process count does not change the output
    c = generate(tmp_path / "c", SynthConfig(persons=6, eval_persons=2, seed=4, width=32,
                                             height=40), workers=1)
    assert _digest(a) == _digest(b)
    assert _digest(a) != _digest(c)


def test_layout_matches_the_competition(synth_root):
    images = synth_root / "train" / "images"
    folders = [p for p in images.iterdir() if p.is_dir()]
    for folder in folders:
        stems = sorted(p.stem for p in folder.iterdir() if not p.name.startswith("."))
        assert stems == sorted(labels.IMAGE_STEMS)
    csv = pd.read_csv(synth_root / "train" / "train.csv", dtype=str)
    assert list(csv.columns) == ["id", "gender", "race", "age", "path"]
    assert not csv["id"].str.startswith("0").any()  # unpadded ids, as in the real file
    info = pd.read_csv(synth_root / "eval" / "info.csv")
    assert list(info.columns) == ["ImageID", "ans"] and (info["ans"] == 0).all()
    assert info["ImageID"].str.fullmatch(r"[0-9a-f]{40}\.jpg").all()
    answers = pd.read_csv(synth_root / "eval" / "answers.csv")
    assert answers["ans"].between(0, 17).all()
    assert (images / ".DS_Store").exists()


def test_people_follow_the_real_statistics():
    people = sample_people(20000, np.random.default_rng(0), difficulty=1.0)
    female = np.mean([p.gender == "female" for p in people])
    groups = np.bincount([labels.age_group(p.age) for p in people]) / len(people)
    assert female == pytest.approx(1658 / 2700, abs=0.015)
    assert groups == pytest.approx([1281 / 2700, 1227 / 2700, 192 / 2700], abs=0.015)
    assert max(p.age for p in people) == 60
    old = [p.apparent_age for p in people if p.age == 60]
    assert min(old) >= 60  # recorded 60, faces older
    ages = np.array([p.age for p in people])
    assert np.mean((ages >= 18) & (ages <= 20)) > 0.25  # the young peak
    ids = [p.person_id for p in people]
    assert any("-" in i for i in ids)


def test_hair_tells_gender_except_a_jaw_length_cut_both_genders_wear():
    # a label-issue finder must tell a mislabelled person (the other gender's usual hair) from
    # a correctly labelled exception: exceptions wear a cut of neither gender
    from maskcls.synth.portraits import PersonLook

    people = sample_people(4000, np.random.default_rng(1), difficulty=1.0)
    cuts = pd.crosstab([p.gender for p in people],
                       [PersonLook(p, difficulty=1.0).hair_cut for p in people])
    assert cuts.loc["female", "short"] == 0 == cuts.loc["male", "long"]
    jaw = cuts["jaw"] / cuts.sum(axis=1)
    assert jaw.to_numpy() == pytest.approx([0.05, 0.05], abs=0.015)


def test_one_id_in_two_folders(synth_root):
    df = cat.scan_train(synth_root)
    per_id = df.groupby("person_id")["folder"].nunique()
    assert (per_id == 2).sum() == 1


def test_cli_refuses_existing_folder_and_bad_counts(tmp_path, capsys):
    out = tmp_path / "t"
    synth_main(["--out", str(out), "--persons", "2", "--eval-persons", "1", "--width", "32",
                "--height", "40", "--workers", "1"])
    assert "wrote 21 images" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="already exists"):
        synth_main(["--out", str(out)])
    for flag, value, message in (("--persons", "0", "--persons (data.synthetic.persons) must "
                                  "be >= 1, got 0"),
                                 ("--framing", "5", "--framing (data.synthetic.framing) must "
                                  "be in 0..1, got 5.0"),
                                 ("--workers", "0", "--workers must be >= 1")):
        with pytest.raises(SystemExit) as exit_:
            synth_main(["--out", str(tmp_path / "u"), flag, value])
        assert exit_.value.code == 2
        last = capsys.readouterr().err.strip().splitlines()[-1]
        assert last == f"python -m maskcls.synth: error: {message}" or message in last, last
    assert not (tmp_path / "u").exists()


def test_interrupted_generation_leaves_nothing(tmp_path, monkeypatch):
    import maskcls.synth as synth

    def boom(*_a, **_k):
        raise KeyboardInterrupt

    monkeypatch.setattr(synth, "_write_person", boom)
    with pytest.raises(KeyboardInterrupt):
        generate(tmp_path / "x", SynthConfig(persons=2, eval_persons=0), workers=1)
    # nothing but the (empty) lock file: no tree, no temporary folder
    assert [p.name for p in tmp_path.iterdir()] == [".x.lock"]
    assert (tmp_path / ".x.lock").stat().st_size == 0


def test_framing_varies_the_shots_and_zero_keeps_the_studio_images(tmp_path):
    import json

    from PIL import Image

    from maskcls.errors import ConfigError
    from maskcls.synth import ensure_synthetic

    base = dict(persons=3, eval_persons=0, seed=3, width=48, height=64)
    studio = generate(tmp_path / "studio", SynthConfig(**base), workers=1)
    phone = generate(tmp_path / "phone", SynthConfig(**base, framing=1.0), workers=1)

    def backdrop_spread(root):  # how much a person's backdrop (top-left corner) varies
        spreads = []
        for folder in (root / "train" / "images").iterdir():
            if folder.is_dir():
                px = [np.asarray(Image.open(p).convert("RGB"))[:4, :4].reshape(-1, 3).mean(0)
                      for p in folder.iterdir() if not p.name.startswith("._")]
                spreads.append(np.asarray(px, dtype=float).std(0).mean())
        return float(np.mean(spreads))

    # studio shots of a person share the backdrop (light and noise aside); framed ones do not
    assert backdrop_spread(phone) > 1.5 * backdrop_spread(studio)
    # a tree recorded before framing existed is the studio tree, not a mismatch
    record = json.loads((studio / "synthetic.json").read_text())
    del record["framing"]
    (studio / "synthetic.json").write_text(json.dumps(record))
    ensure_synthetic(studio, SynthConfig(**base))
    with pytest.raises(ConfigError, match="--framing 1.0"):
        ensure_synthetic(studio, SynthConfig(**base, framing=1.0))
