"""GPU readiness in one command, for a machine with a CUDA GPU (``benchmarks/gpu_check.sh``).

    python -m benchmarks.gpu_check                  # ~10 min on one GPU
    python -m benchmarks.gpu_check --device cpu --sizes 64x48 --persons 40 \\
        --override data.image_size=[64,48]          # the same steps on a CPU, tiny

1. ``benchmarks.train_speed --only "compute limit,maskcls"`` at each of ``--sizes`` with
   ``--precision`` (16-mixed) and channels-last: maskcls's epoch against the compute limit
   on that device;
2. a ``--epochs``-epoch ``experiment=competition`` fold on a synthetic tree (``--persons``
   people; ``model.pretrained=false``: the machine needs no download), timed as a whole
   ``train.py`` process;
3. ``predict.py`` with flip TTA on that run, scored on the tree's ``eval/answers.csv``;
4. the estimate of one full ``experiment=competition`` fold on the real data: the fold's
   seconds per epoch, scaled by the real data's people (2,700) over the tree's, times the
   experiment's ``trainer.max_epochs``.

One table, printed and written to ``--out``; the speed rows' own table beside it (``--work``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from benchmarks import markdown_table, publish, run_python

ROOT = Path(__file__).resolve().parents[1]


def speed_rows(args: argparse.Namespace, work: Path) -> list[list[str]]:
    from benchmarks import train_speed

    rows = train_speed.main([
        "--sizes", args.sizes, "--device", args.device, "--precision", args.precision,
        "--channels-last", "--persons", str(args.speed_persons), "--batch", str(args.batch),
        "--only", "compute limit,maskcls",
        "--data-dir", str(work), "--out", str(work / "train_speed.md")])
    return [[f"train_speed {r['size']}: {r['what']}", f"{r['s/epoch']:.2f} s/epoch",
             f"{r['images/s']:.0f} images/s, {r['x compute limit']:.2f}x the compute limit"]
            for r in rows or []]


def fold_rows(args: argparse.Namespace, work: Path) -> list[list[str]]:
    tree, run = work / "tree", work / "competition-fold"
    if not (tree / "train").is_dir():
        run_python("-m", "maskcls.synth", "--out", str(tree), "--persons", str(args.persons),
                   "--eval-persons", str(args.eval_persons), "--seed", "5")
    accelerator = ["trainer.accelerator=cpu", "trainer.precision=32-true"] \
        if args.device == "cpu" else [f"trainer.precision={args.precision}"]
    train_s = run_python("train.py", "experiment=competition", f"data.root={tree}",
                         "data.synthetic=null", "model.pretrained=false",
                         f"trainer.max_epochs={args.epochs}", f"hydra.run.dir={run}",
                         "callbacks.progress_bar.refresh_rate=0", *accelerator, *args.override)
    metrics = json.loads((run / "metrics.json").read_text())
    epochs_run = metrics["epochs"]  # the trainer's epoch counter at the end: epochs run
    per_epoch = metrics["fit_seconds"] / epochs_run
    real_epoch = per_epoch * real_people() / args.persons
    max_epochs = _competition_epochs()
    sub = work / "submission.csv"
    predict_s = run_python("predict.py", f"ckpt={run}", "tta=true", f"output={sub}",
                           "overwrite=true")
    from benchmarks.quality import score_detail

    score = score_detail(sub, tree)["f1"]
    people = f"{args.persons} people, {metrics['train_images']} training images"
    return [[f"train.py experiment=competition, {args.epochs} epochs", f"{train_s:.0f} s",
             f"{people}; val macro-F1 {metrics['val']['f1']:.3f}"],
            ["predict.py tta=true", f"{predict_s:.0f} s",
             f"{args.eval_persons * 7} eval images; eval macro-F1 {score:.3f}"],
            ["estimate: one experiment=competition fold on the real data",
             f"{real_epoch * max_epochs / 60:.0f} min",
             f"{per_epoch:.1f} s/epoch here x {real_people()}/{args.persons} people x "
             f"{max_epochs} epochs"]]


def real_people() -> int:
    """People in the real ``train.csv`` (the generator's histograms are its counts)."""
    from maskcls.synth.population import REAL_AGE_COUNTS

    return int(sum(sum(c) for c in REAL_AGE_COUNTS.values()))


def _competition_epochs() -> int:
    from omegaconf import OmegaConf

    return int(OmegaConf.load(ROOT / "conf" / "experiment" / "competition.yaml").trainer.max_epochs)


def main(argv: list[str] | None = None) -> list[list[str]]:
    p = argparse.ArgumentParser(prog="python -m benchmarks.gpu_check", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda", help="cuda (default), or cpu for a dry run")
    p.add_argument("--precision", default="16-mixed")
    p.add_argument("--sizes", default="224x224,384x288")
    p.add_argument("--speed-persons", type=int, default=120)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--persons", type=int, default=300)
    p.add_argument("--eval-persons", type=int, default=100)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--override", action="append", default=[],
                   help="extra train.py override for the competition fold (repeatable)")
    p.add_argument("--work", default=str(ROOT / "outputs" / "gpu_check"))
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "gpu_check.md"))
    args = p.parse_args(argv)
    import torch

    if args.device != "cpu" and not torch.cuda.is_available():
        p.error("no CUDA GPU is visible to torch here; run it on the GPU machine "
                "(or --device cpu for a dry run)")
    device = torch.cuda.get_device_name(0) if args.device != "cpu" else "CPU"
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    rows = speed_rows(args, work) + fold_rows(args, work)
    title = (f"GPU check on {device}: torch {torch.__version__}, {args.precision} with "
             f"channels-last for the speed rows")
    publish(markdown_table(title, ["step", "time", "figures"], rows), args.out)
    return rows


if __name__ == "__main__":
    main()
