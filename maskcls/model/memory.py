"""How much memory one training step will take, estimated before any data is read, so an image
size or batch that cannot fit is refused in one line instead of an allocator traceback after
the data is cached."""

from __future__ import annotations

from collections.abc import Sequence

import timm
import torch

from maskcls.data.cache import available_memory
from maskcls.errors import ConfigError

GiB = 1024**3
PROBE = (64, 64)  # the backbone runs once at this size; activations grow with the pixel count
# Every layer's output counts once: about what the backward pass keeps (in-place layers make
# it an over-estimate, mixed precision halves it), so only a step that clearly cannot fit is
# refused.
STEP_FACTOR = 1.0


def step_bytes(backbone: str, image_size: Sequence[int], batch_size: int) -> int:
    """Estimated bytes of activations one training step of ``batch_size`` images holds."""
    with torch.device("meta"):  # shapes only: no weights are made, no arithmetic is done
        net = timm.create_model(backbone, num_classes=18).eval()
    total = 0

    def count(_module, _inputs, output) -> None:
        nonlocal total
        if isinstance(output, torch.Tensor):
            total += output.numel() * output.element_size()

    hooks = [m.register_forward_hook(count) for m in net.modules() if not list(m.children())]
    try:
        with torch.no_grad():
            net(torch.zeros(1, 3, *PROBE, device="meta"))
    finally:
        for h in hooks:
            h.remove()
    scale = image_size[0] * image_size[1] / (PROBE[0] * PROBE[1])
    return int(total * scale * batch_size * STEP_FACTOR)


def check_step_memory(backbone: str, image_size: Sequence[int], batch_size: int,
                      accelerator: str, share: float = 1.0) -> None:
    """Refuse a step that needs more than ``share`` of the memory it would run in (the GPU's
    free memory on a GPU run, else the machine's available RAM)."""
    use_gpu = accelerator in ("gpu", "cuda", "auto") and torch.cuda.is_available()
    need = step_bytes(backbone, image_size, batch_size)
    have = torch.cuda.mem_get_info()[0] if use_gpu else available_memory()
    if need > share * have:
        where = "GPU memory free" if use_gpu else "RAM available"
        raise ConfigError(
            f"data.image_size={list(image_size)} with data.batch_size={batch_size} needs about "
            f"{need / GiB:.1f} GiB for one training step of {backbone}, but only "
            f"{have / GiB:.1f} GiB of {where}; use a smaller data.image_size or "
            "data.batch_size (trainer.accumulate_grad_batches keeps the effective batch)")
