"""Drawing styles: the same people, labels and cues, drawn another way.

Style 0 is the project's own look (and the bytes of every earlier tree). Any other number
draws, from its own seed, another set of outlines and another camera: the outline of the hair
and of the mask, the backdrop (flat, a gradient, stripes), a colour cast, blur, sensor noise,
and an occluder (a hand, a phone, a lamp) over an edge of the photo. A style changes how a cue
looks, never whether it is there, so labels do not change; a recipe that learned the cues and
not the drawing keeps its score on styles it never saw (``benchmarks.quality`` holds some out).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

OUTLINES = ("rounded", "ellipse", "polygon")
BACKDROPS = ("flat", "gradient", "stripes")


@dataclass(frozen=True)
class Style:
    number: int = 0
    hair: str = "rounded"      # outline of the hair masses: rounded, ellipse, polygon
    mask: str = "rounded"      # outline of the mask: rounded, ellipse, polygon
    backdrop: str = "flat"     # flat, gradient, stripes
    cast: tuple[float, float, float] = (1.0, 1.0, 1.0)  # gain per colour channel
    blur: float = 0.0          # Gaussian blur radius, per mille of the width
    noise: float = 0.08        # weight of the sensor noise blended in
    occlusion: float = 0.0     # chance that an occluder covers an edge of a shot

    @classmethod
    def of(cls, number: int) -> Style:
        """Style ``number``: 0 is the default look; others are drawn from their own seed."""
        if number == 0:
            return cls()
        rng = np.random.default_rng([7919, number])
        return cls(number, hair=str(rng.choice(OUTLINES[1:])), mask=str(rng.choice(OUTLINES)),
                   backdrop=str(rng.choice(BACKDROPS[1:])),
                   cast=tuple(float(v) for v in rng.uniform(0.82, 1.18, size=3)),
                   blur=float(rng.uniform(2.0, 6.0)), noise=float(rng.uniform(0.03, 0.16)),
                   occlusion=float(rng.uniform(0.15, 0.4)))


def shape(d: ImageDraw.ImageDraw, outline: str, box: list[float], radius: int,
          fill: tuple[int, int, int]) -> None:
    """A filled blob in ``box`` with the style's outline."""
    if outline == "ellipse":
        d.ellipse(box, fill=fill)
    elif outline == "polygon":
        x0, y0, x1, y1 = box
        cut = min(radius, (x1 - x0) / 3, (y1 - y0) / 3)
        d.polygon([(x0 + cut, y0), (x1 - cut, y0), (x1, y0 + cut), (x1, y1 - cut),
                   (x1 - cut, y1), (x0 + cut, y1), (x0, y1 - cut), (x0, y0 + cut)], fill=fill)
    else:
        d.rounded_rectangle(box, radius=radius, fill=fill)


def backdrop(style: Style, img: Image.Image, colour: tuple[int, int, int],
             rng: np.random.Generator) -> None:
    """Paint the style's backdrop over a flat one (``flat`` leaves it as it is)."""
    if style.backdrop == "flat":
        return
    w, h = img.size
    d = ImageDraw.Draw(img)
    other = tuple(int(v) for v in np.clip(np.array(colour) * rng.uniform(0.5, 1.4), 0, 255))
    if style.backdrop == "gradient":
        for y in range(h):
            t = y / max(1, h - 1)
            d.line([(0, y), (w, y)], fill=tuple(int(a * (1 - t) + b * t)
                                                for a, b in zip(colour, other, strict=True)))
    else:  # stripes
        step = max(2, int(w * rng.uniform(0.04, 0.1)))
        for x in range(0, w, 2 * step):
            d.rectangle([x, 0, x + step - 1, h], fill=other)


def camera(style: Style, img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """The style's occluder, colour cast and blur (after the pose and the light)."""
    w, h = img.size
    if style.occlusion and rng.random() < style.occlusion:
        d = ImageDraw.Draw(img)
        side = rng.integers(3)  # left, right or bottom edge: never the middle of the face
        colour = tuple(int(v) for v in rng.integers(20, 235, size=3))
        size = rng.uniform(0.12, 0.22)
        if side == 2:
            x0 = rng.uniform(0, 1 - size) * w
            box = [x0, h * (1 - size), x0 + size * 2 * w, h * 1.05]
        else:
            x0 = -0.05 * w if side == 0 else w * (1 - size)
            y0 = rng.uniform(0.3, 0.8) * h
            box = [x0, y0, x0 + size * w + 0.05 * w, y0 + size * 1.6 * h]
        d.ellipse(box, fill=colour)
    if style.cast != (1.0, 1.0, 1.0):
        img = Image.merge("RGB", [band.point(lambda v, g=g: min(255, int(v * g)))
                                  for band, g in zip(img.split(), style.cast, strict=True)])
    if style.blur:
        img = img.filter(ImageFilter.GaussianBlur(style.blur * w / 1000))
    return img
