"""Render a face-like portrait whose mask state, gender and age show as visual cues.

Cues, and how they overlap (``difficulty`` scales every source of overlap):

* mask: worn over nose and mouth / worn below the nose or on the chin / none. Always visible,
  but colour, size and position vary.
* gender: hair length (long for most women, short for most men), lip colour, a beard on some
  men. A mask hides mouth and beard, so the hair carries most of it. The exceptions wear a
  jaw-length cut that both genders wear: their hair says nothing of their gender, so they are
  hard, yet still told apart from a mislabelled person (who shows the other gender's usual
  hair), as a label-issue finder needs.
* age: greying hair, forehead wrinkles, eye bags and a receding hairline, each a smooth ramp in
  the person's *apparent* age, so 29 vs 30 is as hard as in reality.

Person-level traits (skin, hair, face shape, background) stay fixed across a person's seven
shots; pose, light, mask colour and JPEG quality change from shot to shot. A ``Style``
(``maskcls.synth.styles``) changes the outlines, backdrop and camera, never the cues.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance

from maskcls import labels
from maskcls.synth import styles
from maskcls.synth.population import Person
from maskcls.synth.styles import Style

DEFAULT_STYLE = Style()

Box = tuple[float, float, float, float]  # x0, y0, x1, y1 in pixels of the upright photo

SKIN_TONES = np.array([[255, 224, 196], [241, 194, 161], [224, 172, 135], [198, 143, 104],
                       [160, 110, 80]], dtype=float)
HAIR_COLOURS = np.array([[20, 16, 14], [45, 30, 22], [70, 48, 30], [110, 75, 45]], dtype=float)
GREY = np.array([135, 135, 132], dtype=float)
WHITE = np.array([245, 245, 240], dtype=float)
FEMALE_LIPS = (200, 90, 100)  # most women's lip colour; the rest, and men, (170, 110, 100)
MASK_COLOURS = [(245, 245, 245), (170, 205, 235), (30, 30, 34), (120, 120, 125),
                (240, 180, 200), (40, 50, 90), (90, 140, 110)]


def _ramp(x: float, lo: float, hi: float) -> float:
    return float(np.clip((x - lo) / (hi - lo), 0.0, 1.0))


def _mix(a: np.ndarray, b: np.ndarray, t: float) -> tuple[int, int, int]:
    return tuple(int(v) for v in np.clip(a * (1 - t) + b * t, 0, 255))


class PersonLook:
    """Traits drawn once per person."""

    def __init__(self, person: Person, difficulty: float) -> None:
        rng = np.random.default_rng(person.seed)
        female = labels.gender_code(person.gender) == labels.FEMALE
        flip = 0.05 * difficulty  # share of people whose hair goes against the usual
        usual = (rng.random() > flip) if female else (rng.random() >= flip)
        self.hair_cut = ("long" if female else "short") if usual else "jaw"
        self.beard = (not female) and rng.random() < 0.35
        self.lips = FEMALE_LIPS if female and rng.random() > flip else (170, 110, 100)
        t = rng.uniform(0, len(SKIN_TONES) - 1)
        i = int(t)
        self.skin = _mix(SKIN_TONES[i], SKIN_TONES[min(i + 1, len(SKIN_TONES) - 1)], t - i)

        def cue(lo: float, hi: float) -> float:  # a ramp in apparent age, blurred per cue
            return _ramp(person.apparent_age + rng.normal(0, 2.0 * difficulty), lo, hi)

        # Young -> middle age: the hair greys. Middle -> old age: it turns white and thins,
        # wrinkles deepen. Each ramp spans one age boundary, so both boundaries stay learnable.
        base = HAIR_COLOURS[rng.integers(len(HAIR_COLOURS))]
        self.grey = cue(24, 50)
        hair = base * (1 - self.grey) + GREY * self.grey
        self.white = cue(54, 72)
        self.hair = _mix(hair, WHITE, self.white)
        self.wrinkles = cue(36, 72)
        self.eye_bags = cue(50, 75)
        self.recede = cue(54, 78) * (1.0 if not female else 0.6)
        self.face_w = rng.uniform(0.38, 0.46)
        self.face_h = self.face_w * rng.uniform(1.25, 1.45)
        self.background = tuple(int(v) for v in rng.integers(60, 230, size=3))
        self.shirt = tuple(int(v) for v in rng.integers(20, 240, size=3))


def _scene(rng: np.random.Generator, background: tuple[int, int, int], width: int, height: int,
           framing: float, style: Style, srng: np.random.Generator) -> Image.Image:
    """The backdrop of one shot. With ``framing`` > 0 every shot is taken somewhere else, as
    phone photos are: the wall colour shifts and a few shapes (doors, shelves, lamps) stand
    behind the person."""
    if not framing:
        img = Image.new("RGB", (width, height), background)
        styles.backdrop(style, img, background, srng)
        return img
    shift = rng.normal(0, 35 * framing, size=3)
    wall = tuple(int(v) for v in np.clip(np.array(background, float) + shift, 0, 255))
    img = Image.new("RGB", (width, height), wall)
    styles.backdrop(style, img, wall, srng)
    d = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(0, 1 + round(4 * framing)))):
        x0, y0 = rng.uniform(-0.2, 1.0) * width, rng.uniform(-0.2, 1.0) * height
        w, h = rng.uniform(0.1, 0.6) * width, rng.uniform(0.1, 0.8) * height
        colour = tuple(int(v) for v in rng.integers(30, 240, size=3))
        box = [x0, y0, x0 + w, y0 + h]
        if rng.random() < 0.5:
            d.rectangle(box, fill=colour)
        else:
            d.ellipse(box, fill=colour)
    return img


def render(look: PersonLook, mask: int, rng: np.random.Generator, width: int, height: int,
           difficulty: float, framing: float = 0.0, style: Style = DEFAULT_STYLE,
           srng: np.random.Generator | None = None) -> tuple[Image.Image, Box, float]:
    """One shot of a person, the box of the face drawn in it (``face_box``) and where the
    mask's top edge sits (in face heights below the face's centre; NaN without a mask).
    ``mask``: 0 worn, 1 worn incorrectly, 2 none. ``framing`` (0..1) varies the backdrop,
    the distance to the camera and where the face sits in the photo from shot to shot; 0
    keeps the studio framing. ``style`` draws from ``srng`` only, so style 0 keeps the exact
    bytes of earlier trees."""
    srng = srng if srng is not None else np.random.default_rng(0)
    img = _scene(rng, look.background, width, height, framing, style, srng)
    d = ImageDraw.Draw(img)
    s = width * rng.uniform(0.92, 1.08)
    cx = width * (0.5 + rng.uniform(-0.06, 0.06))
    cy = height * (0.45 + rng.uniform(-0.04, 0.04))
    if framing:  # closer or further away, off-centre
        s *= float(np.exp(rng.uniform(-0.45, 0.3) * framing))
        cx += width * rng.uniform(-0.15, 0.15) * framing
        cy += height * rng.uniform(-0.1, 0.1) * framing
    fw, fh = look.face_w * s, look.face_h * s
    _draw_head(d, look, cx, cy, fw, fh, s, width, style)
    _draw_face(d, look, cx, cy, fw, fh)
    top = float("nan")
    if mask != 2:
        top = _draw_mask(d, rng, mask, cx, cy, fw, fh, width, style)
    angle = rng.uniform(-8, 8)
    box = face_box(cx, cy, fw, fh, angle, width, height)
    img = _camera(img, angle, rng, look, width, height, difficulty, framing, style.noise)
    return styles.camera(style, img, srng), box, top


def face_box(cx: float, cy: float, fw: float, fh: float, angle: float, width: int,
             height: int) -> Box:
    """The upright bounds ``(x0, y0, x1, y1)`` of the face ellipse (brow to chin, cheek to
    cheek) after the photo is turned by ``angle`` degrees about its centre (as PIL's
    ``rotate``, counter-clockwise), clipped to the photo."""
    t = np.deg2rad(angle)
    dx, dy = cx - width / 2, cy - height / 2
    x = width / 2 + dx * np.cos(t) + dy * np.sin(t)
    y = height / 2 - dx * np.sin(t) + dy * np.cos(t)
    a, b = fw / 2, fh / 2
    hw = np.hypot(a * np.cos(t), b * np.sin(t))
    hh = np.hypot(a * np.sin(t), b * np.cos(t))
    return (float(max(0.0, x - hw)), float(max(0.0, y - hh)), float(min(width, x + hw)),
            float(min(height, y + hh)))


def _draw_head(d: ImageDraw.ImageDraw, look: PersonLook, cx: float, cy: float, fw: float,
               fh: float, s: float, width: int, style: Style) -> None:
    """Shoulders, neck, hair, head and forehead wrinkles."""
    d.ellipse([cx - 0.9 * s, cy + 0.55 * fh, cx + 0.9 * s, cy + 2.2 * fh], fill=look.shirt)
    d.rectangle([cx - 0.18 * fw, cy + 0.3 * fh, cx + 0.18 * fw, cy + 0.75 * fh], fill=look.skin)
    # Hair behind the head: long hair falls to the shoulders, a jaw-length cut to the jaw.
    top = cy - 0.62 * fh
    if look.hair_cut == "long":
        styles.shape(d, style.hair, [cx - 0.62 * fw, top, cx + 0.62 * fw, cy + 0.85 * fh],
                     int(0.4 * fw), look.hair)
    elif look.hair_cut == "jaw":
        styles.shape(d, style.hair, [cx - 0.75 * fw, top, cx + 0.75 * fw, cy + 0.42 * fh],
                     int(0.45 * fw), look.hair)
    d.ellipse([cx - fw / 2, cy - fh / 2, cx + fw / 2, cy + fh / 2], fill=look.skin)
    # Hair on top; a receding hairline shows more forehead.
    hair_bottom = cy - (0.28 + 0.14 * look.recede) * fh
    crown = top + 0.22 * fh * look.recede  # thinning hair sits lower on the head
    d.chord([cx - 0.54 * fw, crown, cx + 0.54 * fw, hair_bottom + 0.35 * fh], 180, 360,
            fill=look.hair)
    if look.wrinkles > 0.05:
        shade = _mix(np.array(look.skin, float), np.zeros(3), 0.25 + 0.3 * look.wrinkles)
        for k in range(1 + int(3 * look.wrinkles)):
            y = hair_bottom + (0.06 + 0.045 * k) * fh
            d.arc([cx - 0.25 * fw, y, cx + 0.25 * fw, y + 0.08 * fh], 200, 340, fill=shade,
                  width=max(1, int(width / 160 + 2 * look.wrinkles)))


def _draw_face(d: ImageDraw.ImageDraw, look: PersonLook, cx: float, cy: float, fw: float,
               fh: float) -> None:
    """Eyes, brows, eye bags, nose, beard and mouth."""
    ey = cy - 0.08 * fh
    for side in (-1, 1):
        ex = cx + side * 0.2 * fw
        r = 0.055 * fw
        d.ellipse([ex - r * 1.4, ey - r, ex + r * 1.4, ey + r], fill=(250, 250, 250))
        d.ellipse([ex - r * 0.6, ey - r * 0.6, ex + r * 0.6, ey + r * 0.6], fill=(35, 25, 20))
        d.line([ex - r * 1.6, ey - 2.2 * r, ex + r * 1.6, ey - 2.4 * r], fill=look.hair,
               width=max(1, int(r * 0.6)))
        if look.eye_bags > 0.05:
            bag = _mix(np.array(look.skin, float), np.array([90, 60, 70.0]), 0.5 * look.eye_bags)
            d.arc([ex - r * 1.4, ey, ex + r * 1.4, ey + 2.2 * r], 20, 160, fill=bag,
                  width=max(1, int(r * 0.5 * look.eye_bags) + 1))
    nose_y = cy + 0.12 * fh
    dark = _mix(np.array(look.skin, float), np.zeros(3), 0.3)
    d.polygon([(cx, cy - 0.02 * fh), (cx - 0.06 * fw, nose_y), (cx + 0.06 * fw, nose_y)],
              fill=dark)
    mouth_y = cy + 0.26 * fh
    if look.beard:
        d.chord([cx - 0.4 * fw, cy + 0.05 * fh, cx + 0.4 * fw, cy + 0.52 * fh], 0, 180,
                fill=_mix(np.array(look.hair, float), np.array(look.skin, float), 0.3))
    d.ellipse([cx - 0.13 * fw, mouth_y - 0.03 * fh, cx + 0.13 * fw, mouth_y + 0.03 * fh],
              fill=look.lips)


def _draw_mask(d: ImageDraw.ImageDraw, rng: np.random.Generator, mask: int, cx: float,
               cy: float, fw: float, fh: float, width: int, style: Style) -> float:
    """Over nose and mouth (worn), or below the nose or on the chin (worn incorrectly);
    returns the top edge in face heights below the face's centre."""
    colour = MASK_COLOURS[rng.integers(len(MASK_COLOURS))]
    if mask == labels.WEAR:
        y0 = cy + rng.uniform(-0.04, 0.02) * fh
    elif rng.random() < 0.5:  # below the nose
        y0 = cy + rng.uniform(0.15, 0.2) * fh
    else:  # on the chin
        y0 = cy + rng.uniform(0.31, 0.36) * fh
    y1 = cy + rng.uniform(0.5, 0.56) * fh
    styles.shape(d, style.mask, [cx - 0.46 * fw, y0, cx + 0.46 * fw, y1], int(0.12 * fw),
                 colour)
    strap = _mix(np.array(colour, float), np.zeros(3), 0.2)
    for side in (-1, 1):
        d.line([cx + side * 0.46 * fw, y0 + 0.04 * fh, cx + side * 0.5 * fw, cy - 0.05 * fh],
               fill=strap, width=max(1, width // 128))
    return float((y0 - cy) / fh)


def _camera(img: Image.Image, angle: float, rng: np.random.Generator, look: PersonLook,
            width: int, height: int, difficulty: float, framing: float, noise: float
            ) -> Image.Image:
    """Pose, light and sensor noise. NEAREST rotation: 12x faster than BILINEAR, and the
    shapes have no anti-aliasing to preserve."""
    img = img.rotate(angle, resample=Image.NEAREST,
                     fillcolor=img.getpixel((0, 0)) if framing else look.background)
    light = 1.0 + rng.uniform(-0.25, 0.25) * min(1.0, difficulty)
    img = ImageEnhance.Brightness(img).enhance(light)
    # Sensor noise from our generator (PIL's effect_noise uses an unseeded C rand()).
    grain = rng.normal(128, 40, size=(max(1, height // 4), max(1, width // 4)))
    grain_img = Image.fromarray(grain.clip(0, 255).astype(np.uint8)).resize((width, height))
    return Image.blend(img, Image.merge("RGB", (grain_img, grain_img, grain_img)), noise)
