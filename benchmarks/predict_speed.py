"""Prediction speed: ``predict.py``'s path against raw batched inference, in one run.

    python -m benchmarks.predict_speed                   # 12,600 eval images, resnet18, 128x96
    python -m benchmarks.predict_speed --eval-persons 300 --repeats 3

1. raw inference: the model's forward passes over the eval images already decoded, resized
   and normalised in memory (batched, ``torch.inference_mode()``);
2. maskcls: ``maskcls.inference.predict`` end to end: read the checkpoint, scan
   ``eval/info.csv``, decode every image, predict, write ``submission.csv``.

Each figure is the median of ``--repeats`` runs; the table is printed and written as markdown.
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import shutil
import statistics
import time
from pathlib import Path

import torch

from benchmarks.train_speed import ROOT
from maskcls.run.same_config import trained_as


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.predict_speed", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--eval-persons", type=int, default=1800, help="7 images each (real: 1800)")
    p.add_argument("--size", default="128x96")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--data-dir", default=str(ROOT / "data"))
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "predict_speed.md"))
    return p


def _tree_and_run(args: argparse.Namespace, h: int, w: int) -> tuple[Path, Path]:
    """The eval tree and a one-epoch run on it, made once and reused."""
    from hydra import compose, initialize_config_dir

    from maskcls.synth import SynthConfig, generate
    from maskcls.training.recipe import train

    data = Path(args.data_dir) / f"bench-eval-{args.eval_persons}"
    if not (data / "eval" / "info.csv").exists():
        generate(data, SynthConfig(persons=30, eval_persons=args.eval_persons, seed=11))
    run = Path(args.data_dir) / "bench-runs" / f"predict-{h}x{w}"
    overrides = [f"data.root={data}", "data.synthetic=null", f"data.image_size=[{h},{w}]",
                 "trainer.max_epochs=1", "trainer.accelerator=cpu",
                 "callbacks.progress_bar.refresh_rate=0"]
    # a run kept from before the default model changed would time another network
    if not ((run / "checkpoints" / "best.ckpt").exists() and trained_as(run, overrides)):
        shutil.rmtree(run, ignore_errors=True)
        with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
            cfg = compose("train", overrides=[*overrides, f"paths.output_dir={run}"])
        train(cfg)
    return data, run


def _raw_seconds(args: argparse.Namespace, data: Path, run: Path, h: int, w: int
                 ) -> tuple[list[float], int]:
    """Forward passes over preloaded, normalised tensors: the reference."""
    from maskcls.data import catalog as cat
    from maskcls.data.dataset import decode_all
    from maskcls.data.pipeline import Pipeline
    from maskcls.data.transforms import IMAGENET_MEAN, IMAGENET_STD
    from maskcls.run.checkpoints import load_checkpoint
    from maskcls.run.trained import find_checkpoints, load_model

    ckpt_path = find_checkpoints(run)[0][0].ckpt
    model = load_model(load_checkpoint(ckpt_path), ckpt_path)
    paths = cat.scan_eval(data)["path"].tolist()
    pixels = decode_all(paths, Pipeline((h, w)), num_workers=2)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    x = (pixels.float() / 255 - mean) / std
    del pixels
    raw = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        with torch.inference_mode():
            for i in range(0, len(x), args.batch):
                model(x[i:i + args.batch]).softmax(1)
        raw.append(time.perf_counter() - t0)
    return raw, len(paths)


def _predict_seconds(args: argparse.Namespace, data: Path, run: Path) -> list[float]:
    """The predict.py path, end to end."""
    from maskcls.config import PredictData, PredictSettings
    from maskcls.inference import predict

    ours = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        predict(PredictSettings(ckpt=str(run), data=PredictData(str(data)),
                                output=str(run / "bench_submission.csv"),
                                batch_size=args.batch, accelerator="cpu",
                                tta=False,  # one view: the same work as the raw loop
                                overwrite=True))  # the benchmark's own file, every repeat
        ours.append(time.perf_counter() - t0)
    return ours


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    h, w = (int(v) for v in args.size.split("x"))
    data, run = _tree_and_run(args, h, w)
    raw, n = _raw_seconds(args, data, run, h, w)
    ours = _predict_seconds(args, data, run)
    rows = [("raw batched inference (preloaded tensors)", statistics.median(raw)),
            ("maskcls predict (decode + predict + write)", statistics.median(ours))]
    ref = rows[0][1]
    lines = [f"resnet18 at {h}x{w}, {n} eval images, batch {args.batch}, median of "
             f"{args.repeats}, torch {torch.__version__}, {multiprocessing.cpu_count()} CPU cores",
             "", "| what | seconds | images/s | x raw inference |", "| --- | --- | --- | --- |"]
    lines += [f"| {name} | {t:.1f} | {n / t:.0f} | {t / ref:.2f} |" for name, t in rows]
    lines.append("")
    lines.append(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB "
                 "(the raw reference holds every image as float32)")
    table = "\n".join(lines)
    print(table)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(table + "\n")
    print(f"wrote {out}")

if __name__ == "__main__":
    main()
