"""Per-image random augmentation and normalisation of a whole uint8 batch in a few tensor ops.

The loaders serve uint8 pixels (cached or decoded); ``BatchTransform`` runs after the batch
reaches the training device (the datamodule's ``on_after_batch_transfer``). On a GPU the CPU
then only indexes the cache; on a CPU each op is one vectorised call per batch instead of a
chain of small calls per image. Every image still draws its own parameters:

* rotation, horizontal flip, zoom and shift: one bilinear affine resampling, uncovered
  pixels filled with 0;
* brightness, contrast, saturation, hue and the normalisation: folded into one 3x3 colour
  matrix and offset per image, clamped once to the valid pixel range. torchvision's
  ``ColorJitter`` clamps after each op and shuffles their order per image; here the order is
  brightness, contrast, saturation, hue, and hue turns the chroma plane of YIQ space (a linear
  approximation of the HSV hue shift);
* sharpness: torchvision's ``adjust_sharpness`` (factor 2: blend with its 3x3 smoothing
  kernel, borders kept);
* erasing: one rectangle of 2-33% of the image, aspect 0.3-3.3, set to 0 (the mean colour
  after normalising), as torchvision's ``RandomErasing`` with ``value=0``.

Random parameters are drawn on the CPU from torch's global generator, which the training
sampler reseeds every epoch, so a resumed run draws the same augmentations on any device and
with any number of loader workers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from maskcls.data.transforms import AugmentConfig
from maskcls.errors import ConfigError

# torchvision's greyscale weights (rgb_to_grayscale), used by contrast and saturation.
GREY = (0.2989, 0.587, 0.114)
_RGB_TO_YIQ = torch.tensor([[0.299, 0.587, 0.114],
                            [0.596, -0.274, -0.322],
                            [0.211, -0.523, 0.312]], dtype=torch.float64)
# Slices of about this many bytes of float pixels keep a CPU's intermediates in cache.
_CPU_SLICE_BYTES = 4 << 20


def check_normalisation(mean: Sequence[float], std: Sequence[float]
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """Three means and three positive stds, as float64 tensors."""
    mean_t = torch.tensor([float(v) for v in mean], dtype=torch.float64)
    std_t = torch.tensor([float(v) for v in std], dtype=torch.float64)
    if mean_t.shape != (3,) or std_t.shape != (3,) or bool((std_t <= 0).any()):
        raise ConfigError(f"data.normalize needs three means and three positive stds, got "
                          f"mean={list(mean)} std={list(std)}")
    return mean_t, std_t


class BatchTransform(nn.Module):
    """uint8 ``(B, 3, H, W)`` -> normalised float32, augmented per image when ``augment`` is set.

    ``BatchTransform(None, mean, std)`` only normalises: the validation and prediction path.
    """

    def __init__(self, augment: AugmentConfig | None, mean: Sequence[float],
                 std: Sequence[float]) -> None:
        super().__init__()
        self.cfg = augment if augment is not None else AugmentConfig(rotation=0, hflip=0)
        mean_t, std_t = check_normalisation(mean, std)
        self.mean, self.std = mean_t, std_t
        # Normalised values of pixels 0 and 255: the clamp bounds after the colour ops.
        self.register_buffer("low", (-mean_t / std_t).float().view(1, 3, 1, 1), persistent=False)
        self.register_buffer("high", ((1 - mean_t) / std_t).float().view(1, 3, 1, 1),
                             persistent=False)
        # (pixel / 255 - mean) / std as one multiply-add: pixel * scale + shift
        self.register_buffer("scale", (1 / (255 * std_t)).float().view(1, 3, 1, 1),
                             persistent=False)
        self.register_buffer("shift", (-mean_t / std_t).float().view(1, 3, 1, 1),
                             persistent=False)
        c = self.cfg
        self.colour = bool(c.brightness or c.contrast or c.saturation or c.hue)

    def extra_repr(self) -> str:
        return f"augment={self.cfg}, mean={self.mean.tolist()}, std={self.std.tolist()}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype != torch.uint8 or x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"BatchTransform expects uint8 (B, 3, H, W) pixels, got "
                             f"{x.dtype} {tuple(x.shape)}")
        b, _, h, w = x.shape
        out = torch.empty(x.shape, dtype=torch.float32, device=x.device)
        if b == 0:
            return out
        params = self.draw(b, h, w)  # the whole batch's, so slicing never changes a draw
        step = b if x.device.type != "cpu" else max(1, _CPU_SLICE_BYTES // (12 * h * w))
        for i in range(0, b, step):
            part = {k: v[i:i + step] for k, v in params.items()}
            self._transform(x[i:i + step], out[i:i + step], part)
        return out

    def draw(self, n: int, h: int, w: int) -> dict[str, torch.Tensor]:
        """Random parameters of ``n`` images, on the CPU, from torch's global generator.
        They stay on the CPU (a few numbers an image); only what touches pixels is moved."""
        c = self.cfg

        def uniform(low: float, high: float) -> torch.Tensor:
            return low + torch.rand(n, dtype=torch.float64) * (high - low)

        def factor(amount: float) -> torch.Tensor:  # torchvision's [max(0, 1 - a), 1 + a]
            return uniform(max(0.0, 1 - amount), 1 + amount)

        params: dict[str, torch.Tensor] = {}
        if c.rotation or c.hflip:
            params["angle"] = uniform(-c.rotation, c.rotation)
            params["flip"] = torch.rand(n) < c.hflip
        if self.colour:
            params.update(brightness=factor(c.brightness), contrast=factor(c.contrast),
                          saturation=factor(c.saturation), hue=uniform(-c.hue, c.hue))
        if c.sharpness:
            params["sharpen"] = torch.rand(n) < c.sharpness
        if c.erasing:
            params["erase"] = erasing_boxes(n, h, w, c.erasing)
        # drawn last, so switching them on leaves every other op's draws as they were
        if c.scale or c.translate:
            params["zoom"] = uniform(-math.log1p(c.scale), math.log1p(c.scale)).exp()
            params["shift"] = torch.stack([uniform(-c.translate, c.translate),
                                           uniform(-c.translate, c.translate)], 1)
            if "angle" not in params:
                params["angle"] = torch.zeros(n, dtype=torch.float64)
                params["flip"] = torch.zeros(n, dtype=torch.bool)
        return params

    # ------------------------------------------------------------------------------ stages
    def _transform(self, x: torch.Tensor, out: torch.Tensor, p: dict[str, torch.Tensor]) -> None:
        n, _, h, w = x.shape
        pixels = x  # uint8, or float 0..255 after resampling
        if "angle" in p:
            pixels = affine_resample(x.float(), p["angle"], p["flip"], p.get("zoom"),
                                     p.get("shift"))
        if self.colour:
            # float32 sums (MPS has no float64); their rounding is far below one grey level
            sums = pixels.sum((2, 3), dtype=torch.float32).cpu().double()
            matrix, offset = colour_matrix(sums / (255 * h * w), p["brightness"], p["contrast"],
                                           p["saturation"], p["hue"], self.mean, self.std)
            torch.baddbmm(offset.to(out.device).view(n, 3, 1), matrix.to(out.device),
                          pixels.float().view(n, 3, -1), out=out.view(n, 3, -1))
            out.clamp_(self.low, self.high)  # the colour ops may leave the pixel range
        elif pixels.is_floating_point():  # normalising only
            torch.addcmul(self.shift, pixels, self.scale, out=out)
        else:
            out.copy_(pixels).mul_(self.scale).add_(self.shift)
        if "sharpen" in p:
            pick = torch.nonzero(p["sharpen"]).flatten().to(out.device)
            if len(pick):
                out[pick] = sharpen(out[pick], self.low, self.high)
        if "erase" in p:
            out.masked_fill_(box_mask(p["erase"], h, w, out.device), 0.0)


def colour_matrix(channel_means: torch.Tensor, brightness: torch.Tensor, contrast: torch.Tensor,
                  saturation: torch.Tensor, hue: torch.Tensor, mean: torch.Tensor,
                  std: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image: ``matrix`` (n, 3, 3) and ``offset`` (n, 3) that take pixels in 0..255 to
    normalised values after brightness, contrast, saturation (torchvision's factors) and a
    hue turn of ``hue`` of the colour wheel (-0.5..0.5). ``channel_means``: (n, 3) in 0..1.
    All on the CPU: a few numbers an image."""
    n = len(channel_means)
    grey = torch.tensor(GREY, dtype=torch.float64)
    eye = torch.eye(3, dtype=torch.float64)
    # saturation: blend with the grey image; s*I + (1-s) * [grey; grey; grey]
    s = saturation.double().view(n, 1, 1)
    m_sat = s * eye + (1 - s) * grey.expand(3, 3)
    turn = hue.double() * 2 * math.pi
    rot = torch.zeros(n, 3, 3, dtype=torch.float64)
    rot[:, 0, 0] = 1
    rot[:, 1, 1], rot[:, 1, 2] = turn.cos(), -turn.sin()
    rot[:, 2, 1], rot[:, 2, 2] = turn.sin(), turn.cos()
    m_hue = torch.linalg.inv(_RGB_TO_YIQ) @ rot @ _RGB_TO_YIQ
    colour = m_hue @ m_sat  # (n, 3, 3), applied after brightness and contrast
    b, c = brightness.double(), contrast.double()
    # contrast blends with the mean grey level of the brightened image (torchvision)
    mean_grey = b * (channel_means.double() @ grey)
    linear = (c * b).view(n, 1, 1) * colour
    offset = ((1 - c) * mean_grey).view(n, 1) * colour.sum(2)
    mean, std = mean.double(), std.double()
    matrix = linear / (255 * std.view(1, 3, 1))
    offset = (offset - mean) / std
    return matrix.float(), offset.float()


def affine_resample(x: torch.Tensor, angles: torch.Tensor, flips: torch.Tensor,
                    zoom: torch.Tensor | None = None, shift: torch.Tensor | None = None
                    ) -> torch.Tensor:
    """Rotate each float image by ``angles`` degrees counter-clockwise about its centre
    (as ``torchvision...rotate``), after mirroring it left-right where ``flips``; then magnify
    it by ``zoom`` and move its content by ``shift`` (x, y fractions of the width and height);
    bilinear, zero fill, one ``grid_sample`` for the batch."""
    n, _, h, w = x.shape
    a = torch.deg2rad(angles.double())
    sign = 1.0 - 2.0 * flips.double()
    cos, sin = a.cos(), a.sin()
    inv = 1.0 / zoom.double() if zoom is not None else torch.ones_like(a)
    tx, ty = ((-2.0 * shift.double()).unbind(1) if shift is not None
              else (torch.zeros_like(a), torch.zeros_like(a)))
    # Output pixel -> input pixel, in grid_sample's [-1, 1] coordinates (x spans w, y spans h):
    # undo the shift and the zoom, an inverse rotation in pixel units, the mirror of x.
    theta = torch.stack([torch.stack([sign * cos * inv, -sign * sin * h / w * inv,
                                      sign * (cos * tx - sin * h / w * ty) * inv], 1),
                         torch.stack([sin * w / h * inv, cos * inv,
                                      (sin * w / h * tx + cos * ty) * inv], 1)], 1)
    grid = F.affine_grid(theta.to(x.device, torch.float32), [n, 3, h, w], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def sharpen(x: torch.Tensor, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """torchvision's ``adjust_sharpness(x, 2)`` on normalised pixels (the smoothing kernel
    sums to one, so it commutes with the per-channel normalisation)."""
    if x.shape[-1] <= 2 or x.shape[-2] <= 2:
        return x
    kernel = torch.ones(3, 3, dtype=x.dtype, device=x.device)
    kernel[1, 1] = 5.0
    kernel = (kernel / kernel.sum()).expand(3, 1, 3, 3)
    smooth = F.conv2d(x, kernel, groups=3)
    out = x.clone()
    inner = out[..., 1:-1, 1:-1]
    inner.mul_(2).sub_(smooth)
    return torch.maximum(torch.minimum(out, high), low)


def erasing_boxes(n: int, h: int, w: int, p: float) -> torch.Tensor:
    """(n, 4) rows ``top, left, height, width``: one rectangle for each image picked with
    probability ``p`` (height 0 for the others)."""
    area = (torch.rand(n) * (0.33 - 0.02) + 0.02) * h * w
    log_ratio = torch.rand(n) * (math.log(3.3) - math.log(0.3)) + math.log(0.3)
    ratio = log_ratio.exp()
    eh = (area * ratio).sqrt().round().clamp(1, h).long()
    ew = (area / ratio).sqrt().round().clamp(1, w).long()
    top = (torch.rand(n) * (h - eh + 1)).long()
    left = (torch.rand(n) * (w - ew + 1)).long()
    picked = torch.rand(n) < p
    return torch.stack([top, left, eh * picked, ew], 1)


def box_mask(boxes: torch.Tensor, h: int, w: int, device: torch.device) -> torch.Tensor:
    """(n, 1, h, w) bool mask of ``erasing_boxes``, built on ``device``."""
    n = len(boxes)
    top, left, eh, ew = (v.view(n, 1) for v in boxes.to(device).unbind(1))
    rows = torch.arange(h, device=device).view(1, h)
    cols = torch.arange(w, device=device).view(1, w)
    in_rows = (rows >= top) & (rows < top + eh)
    in_cols = (cols >= left) & (cols < left + ew)
    return (in_rows.view(n, h, 1) & in_cols.view(n, 1, w)).view(n, 1, h, w)
