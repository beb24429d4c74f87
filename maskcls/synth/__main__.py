"""``python -m maskcls.synth --out DIR``: write a synthetic competition tree."""

from __future__ import annotations

import argparse
import time

from maskcls import labels
from maskcls.errors import ConfigError, one_line_errors
from maskcls.synth import SynthConfig, generate, label_errors


def main(argv: list[str] | None = None) -> None:
    d = SynthConfig()
    p = argparse.ArgumentParser(prog="python -m maskcls.synth", description=__doc__)
    p.add_argument("--out", required=True, help="folder to create (must not exist)")
    p.add_argument("--persons", type=int, default=d.persons, help="training people (7 shots each)")
    p.add_argument("--eval-persons", type=int, default=d.eval_persons, help="eval people")
    p.add_argument("--seed", type=int, default=d.seed,
                   help="random seed: the same seed and settings draw the same tree "
                        "(default %(default)s)")
    p.add_argument("--width", type=int, default=d.width,
                   help="image width in pixels (default %(default)s, as the real photos)")
    p.add_argument("--height", type=int, default=d.height,
                   help="image height in pixels (default %(default)s, as the real photos)")
    p.add_argument("--difficulty", type=float, default=d.difficulty,
                   help="overlap of the visual cues: 0 = clean, 1 = default, 2 = hard")
    p.add_argument("--framing", type=float, default=d.framing,
                   help="0 = studio shots (default); 1 = backdrop, distance and face position "
                        "vary from shot to shot, as in phone photos")
    p.add_argument("--label-errors", type=float, default=d.label_errors,
                   help="share of training people given a wrong label (gender, age group, or "
                        "swapped incorrect_mask/normal shots), listed in label_errors.csv")
    p.add_argument("--style", type=int, default=d.style,
                   help="drawing style: 0 = the default look; any other number draws other "
                        "hair and mask outlines, backdrops, colour cast, blur, noise and "
                        "occluders (labels unchanged) (default %(default)s)")
    p.add_argument("--age-overlap", type=float, default=d.age_overlap,
                   help="0 = every 60+ person looks 62-82 (default); 1 = many look as young as "
                        "the 55-59-year-olds, as in the real data")
    p.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    a = p.parse_args(argv)
    cfg = SynthConfig(a.persons, a.eval_persons, a.seed, a.width, a.height, a.difficulty,
                      a.framing, a.label_errors, a.style, a.age_overlap)
    try:
        cfg.check()
    except ConfigError as e:
        p.error(str(e))
    if a.workers is not None and a.workers < 1:
        p.error(f"--workers must be >= 1, got {a.workers}")
    t0 = time.perf_counter()
    try:
        with one_line_errors(FileExistsError):
            out = generate(a.out, cfg, workers=a.workers)
    except OSError as e:  # a read-only or missing parent, a full disk
        raise SystemExit(f"error: cannot write {a.out}: {e.strerror or e}") from None
    n = labels.SHOTS_PER_PERSON * (cfg.persons + cfg.eval_persons)
    dt = time.perf_counter() - t0
    print(f"wrote {n} images ({cfg.persons} train + {cfg.eval_persons} eval people) to {out} "
          f"in {dt:.1f}s ({n / dt:.0f} images/s)")
    if cfg.label_errors:
        print(f"  {label_errors.FILE} lists the people given a wrong label on purpose")


if __name__ == "__main__":
    main()
