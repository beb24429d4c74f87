"""Training speed: maskcls against the compute limit and a plain PIL reference, in one run.

    python -m benchmarks.train_speed                 # resnet18 at 128x96 and 224x224
    python -m benchmarks.train_speed --sizes 128x96 --epochs 4 --persons 120
    python -m benchmarks.train_speed --device cuda --precision 16-mixed --channels-last \
        --sizes 224x224,384x288                     # on a GPU (benchmarks/gpu_check.sh)

Measured on the same synthetic images, model, batch size and image size; every figure is the
median of the epochs after the first (warm-up, cache building), at least three:

1. compute limit: a raw PyTorch loop (forward, backward, step; then a forward pass over the
   validation images) over tensors already in memory;
2. maskcls: ``train.py``'s real path (DataModule + LightningModule + Trainer, logging and
   checkpointing on), timed per epoch by a callback;
3. plain reference: the same loops over a PIL ``Dataset`` that opens, resizes and normalises
   each image every epoch (what the competition's starter code does);
4. loader only: images/s of the maskcls training loader followed by its batch augmentation
   and normalisation (``BatchTransform``, as in training), and of the PIL loader; no model.

Each measurement runs in its own process, so its peak RSS is its own. With ``--device cuda``
the model, the preloaded tensors of (1) and the batches of (2) and (3) live on the GPU, under
``--precision`` (autocast, and a gradient scaler for 16-mixed) and ``--channels-last``; the
loaders stay on the CPU. The table is printed and written as markdown to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks import markdown_table, publish
from benchmarks.reference_loops import PRECISIONS, PILDataset, epochs_loop, resnet18

ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------ shared set-up
def _data(args: argparse.Namespace) -> Path:
    from maskcls.synth import SynthConfig, generate

    root = Path(args.data_dir) / f"bench-{args.persons}"
    if not (root / "train" / "images").is_dir():
        generate(root, SynthConfig(persons=args.persons, eval_persons=0, seed=7))
    return root


def _datamodule(root: Path, size: tuple[int, int], batch: int, cache: str):
    from maskcls.data.datamodule import MaskDataModule

    dm = MaskDataModule.from_keys(str(root), image_size=size, batch_size=batch, cache=cache,
                                  augment={"rotation": 10, "brightness": 0.2, "contrast": 0.2,
                                           "saturation": 0.2, "hflip": 0.5},
                                  undersample={"keep_masked": 5}, val_ratio=0.2)
    dm.setup("fit")
    return dm


# ------------------------------------------------------------------------------ measurements
def measure_compute(args, root, size) -> dict[str, Any]:
    dm = _datamodule(root, size, args.batch, "ram")
    n_train, n_val = len(dm.train_rows), len(dm.val_rows)
    x_train = torch.randn(n_train, 3, *size, device=args.device)
    y_train = torch.randint(0, 18, (n_train,), device=args.device)
    x_val = torch.randn(n_val, 3, *size, device=args.device)
    del dm
    b = args.batch

    # Full batches only, like maskcls's loader (a batch of one breaks BatchNorm).
    stop = n_train - n_train % b if n_train > b else n_train

    def train_batches():
        perm = torch.randperm(n_train)
        for i in range(0, stop, b):
            j = perm[i:i + b].to(args.device)
            yield x_train[j], y_train[j]

    def val_batches():
        for i in range(0, n_val, b):
            yield x_val[i:i + b], None

    times = epochs_loop(resnet18(args), train_batches, val_batches, args)
    return {"epoch_s": times, "train_images": n_train, "val_images": n_val}


def measure_maskcls(args, root, size, extra: tuple[str, ...] = ()) -> dict[str, Any]:
    import pytorch_lightning as pl
    from hydra import compose, initialize_config_dir

    from maskcls.training import recipe as training

    times: list[float] = []

    class EpochTimer(pl.Callback):
        def on_train_epoch_start(self, trainer, pl_module):
            self.t0 = time.perf_counter()

        def on_train_epoch_end(self, trainer, pl_module):  # after validation and checkpoint
            times.append(time.perf_counter() - self.t0)

    out = Path(args.data_dir) / "bench-runs" / f"{size[0]}x{size[1]}{'-' * bool(extra)}" \
        f"{'-'.join(e.split('=')[-1] for e in extra)}"
    shutil.rmtree(out, ignore_errors=True)  # the benchmark's own scratch run from last time
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=[
            f"data.root={root}", "data.synthetic=null", f"data.image_size=[{size[0]},{size[1]}]",
            f"data.batch_size={args.batch}", "data.undersample.keep_masked=5",
            f"trainer.max_epochs={args.epochs}",
            f"trainer.accelerator={'gpu' if args.device.startswith('cuda') else 'cpu'}",
            f"trainer.precision={args.precision}",
            f"model.channels_last={str(args.channels_last).lower()}",
            "callbacks.progress_bar.refresh_rate=0", f"paths.output_dir={out}",
            "model.backbone=resnet18", *extra])
    training.train(cfg, extra_callbacks=[EpochTimer()])
    metrics = json.loads((out / "metrics.json").read_text())
    return {"epoch_s": times, "train_images": metrics["train_images"],
            "val_images": metrics["val_images"]}


def _pil_loaders(args, root, size):
    dm = _datamodule(root, size, args.batch, "none")
    cat = dm.catalog
    workers = max(1, multiprocessing.cpu_count() // 2)  # the starter code's choice

    def loader(rows, shuffle):
        ds = PILDataset(cat["path"].iloc[rows].tolist(), cat["label"].iloc[rows].tolist(), size)
        return torch.utils.data.DataLoader(ds, batch_size=args.batch, shuffle=shuffle,
                                           num_workers=workers,
                                           drop_last=shuffle and len(ds) > args.batch)
    return loader(dm.train_rows, True), loader(dm.val_rows, False), len(dm.train_rows), \
        len(dm.val_rows)


def measure_plain(args, root, size) -> dict[str, Any]:
    train_loader, val_loader, n_train, n_val = _pil_loaders(args, root, size)
    times = epochs_loop(resnet18(args), lambda: train_loader, lambda: val_loader, args)
    return {"epoch_s": times, "train_images": n_train, "val_images": n_val}


def measure_loader_maskcls(args, root, size) -> dict[str, Any]:
    dm = _datamodule(root, size, args.batch, "ram")
    dm.trainer = None
    times = []
    for _ in range(args.epochs):
        t0 = time.perf_counter()
        for x, _y, _index in dm.train_dataloader():
            dm.train_transform(x)  # what on_after_batch_transfer does in training
        times.append(time.perf_counter() - t0)
    return {"epoch_s": times, "train_images": len(dm.train_rows), "val_images": 0}


def measure_loader_plain(args, root, size) -> dict[str, Any]:
    train_loader, _, n_train, _ = _pil_loaders(args, root, size)
    times = []
    for _ in range(args.epochs):
        t0 = time.perf_counter()
        for _batch in train_loader:
            pass
        times.append(time.perf_counter() - t0)
    return {"epoch_s": times, "train_images": n_train, "val_images": 0}


def measure_maskcls_recipe(args, root, size) -> dict[str, Any]:
    """The per-task head with mixup and cutmix (extra batch ops, three heads)."""
    return measure_maskcls(args, root, size, ("model.head=multi", "augment.mixup=0.2",
                                              "augment.cutmix=1.0", "augment.scale=0.15",
                                              "augment.translate=0.08"))


MEASUREMENTS = {
    "compute limit": measure_compute,
    "maskcls": measure_maskcls,
    "maskcls: head=multi mixup cutmix zoom": measure_maskcls_recipe,
    "plain reference": measure_plain,
    "loader: maskcls": measure_loader_maskcls,
    "loader: plain PIL": measure_loader_plain,
}


def child(args: argparse.Namespace) -> None:
    size = tuple(int(v) for v in args.size.split("x"))
    root = _data(args)
    res = MEASUREMENTS[args.child](args, root, size)
    res["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("RESULT " + json.dumps(res), flush=True)


def run_child(args: argparse.Namespace, name: str, size: str) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "benchmarks.train_speed", "--child", name, "--size", size,
           "--epochs", str(args.epochs), "--persons", str(args.persons),
           "--batch", str(args.batch), "--data-dir", args.data_dir, "--device", args.device,
           "--precision", args.precision] + ["--channels-last"] * args.channels_last
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    line = [ln for ln in res.stdout.splitlines() if ln.startswith("RESULT ")]
    if res.returncode != 0 or not line:
        raise RuntimeError(f"{name} at {size} failed:\n{res.stderr[-3000:]}")
    return json.loads(line[-1][len("RESULT "):])


def main(argv: list[str] | None = None) -> list[dict[str, Any]] | None:
    """The table's rows (``None`` in a measuring child process)."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.train_speed", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="128x96,224x224", help="HxW list")
    p.add_argument("--epochs", type=int, default=4, help="epochs per measurement (>= 4: "
                   "the first is warm-up, the median is over the rest)")
    p.add_argument("--persons", type=int, default=120, help="synthetic people (7 images each)")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--data-dir", default=str(ROOT / "data"))
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "train_speed.md"))
    p.add_argument("--device", default="cpu", help="cpu, or cuda (a GPU)")
    p.add_argument("--precision", default="32-true", choices=list(PRECISIONS),
                   help="as trainer.precision (16-mixed on a GPU)")
    p.add_argument("--channels-last", action="store_true",
                   help="channels-last memory format (model.channels_last=true)")
    p.add_argument("--only", help="comma-separated rows to measure (default: all of "
                   f"{', '.join(MEASUREMENTS)}); the ratios need 'compute limit' and "
                   "'plain reference' (or 'loader: plain PIL' for the loader rows) among them")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--size", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return child(args)
    if args.epochs < 4:
        p.error("--epochs must be at least 4 (one warm-up epoch, a median over three)")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        p.error("--device cuda: no CUDA GPU is visible to torch on this machine")
    if args.device not in ("cpu", "cuda") and not args.device.startswith("cuda:"):
        p.error(f"--device must be cpu or cuda[:N], got {args.device!r}")
    names = list(MEASUREMENTS) if not args.only else [n.strip() for n in args.only.split(",")]
    unknown = [n for n in names if n not in MEASUREMENTS]
    if unknown:
        p.error(f"--only: no row named {unknown[0]!r}; rows: {', '.join(MEASUREMENTS)}")
    rows = []
    for size in args.sizes.split(","):
        results = {}
        for name in names:
            r = run_child(args, name, size)
            steady = r["epoch_s"][1:]
            r["median_s"] = statistics.median(steady)
            r["images_s"] = r["train_images"] / r["median_s"]
            results[name] = r
            print(f"{size} {name}: {r['median_s']:.2f} s/epoch "
                  f"({', '.join(f'{t:.2f}' for t in r['epoch_s'])})", flush=True)
        for name, r in results.items():
            loader = name.startswith("loader")
            rows.append({
                "size": size, "what": name,
                "images/s": r["images_s"],
                "s/epoch": r["median_s"],
                "x compute limit": None if loader else _ratio(r, results, "compute limit"),
                "x plain reference": None if loader else _ratio(r, results, "plain reference"),
                "x plain PIL loader": _ratio(r, results, "loader: plain PIL", "images_s")
                if loader else None,
                "peak RSS MiB": r["peak_rss_mib"],
            })
    table = _markdown(rows, args)
    publish(table, args.out)
    return rows


def _ratio(r: dict[str, Any], results: dict[str, dict[str, Any]], ref: str,
           key: str = "median_s") -> float | None:
    """``r``'s figure over the reference row's, or None when that row was not measured."""
    return r[key] / results[ref][key] if ref in results else None


def _markdown(rows: list[dict[str, Any]], args: argparse.Namespace) -> str:
    cols = list(rows[0])
    device = (torch.cuda.get_device_name(torch.device(args.device))
              if args.device.startswith("cuda") else "CPU")
    layout = ", channels-last" if args.channels_last else ""
    title = (f"resnet18 on {device}, {args.precision}{layout}, batch {args.batch}, "
             f"{args.persons * 7} synthetic images "
             f"({args.persons} people, 80% train / 20% validation), "
             f"median of epochs 2..{args.epochs}, "
             f"torch {torch.__version__}, {multiprocessing.cpu_count()} CPU cores, "
             f"{torch.get_num_threads()} torch threads")

    def cell(v: Any) -> str:
        return "" if v is None else f"{v:.2f}" if isinstance(v, float) else str(v)

    return markdown_table(title, cols, [[cell(r[c]) for c in cols] for r in rows])


if __name__ == "__main__":
    main()
