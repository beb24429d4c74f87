"""The plain PyTorch loops ``benchmarks.train_speed`` measures maskcls against: the starter
code's PIL dataset and a hand-written train-then-evaluate epoch under a precision and layout."""

from __future__ import annotations

import argparse
import time

import torch


class PILDataset(torch.utils.data.Dataset):
    """The starter code's dataset: open, resize, normalise every image, every epoch."""

    def __init__(self, paths: list[str], labels: list[int], size: tuple[int, int]) -> None:
        from torchvision import transforms

        self.paths, self.labels = paths, labels
        self.tf = transforms.Compose([
            transforms.Resize(size), transforms.ToTensor(),
            transforms.Normalize((0.548, 0.504, 0.479), (0.237, 0.247, 0.246))])

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        from PIL import Image

        return self.tf(Image.open(self.paths[i]).convert("RGB")), self.labels[i]


PRECISIONS = {"32-true": None, "16-mixed": torch.float16, "bf16-mixed": torch.bfloat16}


def memory_format(args: argparse.Namespace) -> torch.memory_format:
    return torch.channels_last if args.channels_last else torch.contiguous_format


def resnet18(args: argparse.Namespace) -> torch.nn.Module:
    import timm

    torch.manual_seed(0)
    model = timm.create_model("resnet18", num_classes=18)
    return model.to(args.device, memory_format=memory_format(args))


def epochs_loop(model, train_batches, val_batches, args) -> list[float]:
    """Plain PyTorch: train then evaluate, per epoch; ``*_batches`` are callables giving
    iterables of (x, y). Batches go to ``args.device`` (in ``--channels-last`` layout) and
    run under ``--precision``'s autocast."""
    dtype = PRECISIONS[args.precision]
    device_type = torch.device(args.device).type

    def autocast():
        return torch.autocast(device_type, dtype=dtype, enabled=dtype is not None)

    def put(x):
        return x.to(args.device, non_blocking=True, memory_format=memory_format(args))

    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    scaler = torch.amp.GradScaler(device_type, enabled=dtype == torch.float16)
    times = []
    for _ in range(args.epochs):
        t0 = time.perf_counter()
        model.train()
        for x, y in train_batches():
            opt.zero_grad(set_to_none=True)
            with autocast():
                loss = torch.nn.functional.cross_entropy(model(put(x)), y.to(args.device))
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        model.eval()
        with torch.inference_mode(), autocast():
            for x, _ in val_batches():
                model(put(x))
        if device_type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return times
