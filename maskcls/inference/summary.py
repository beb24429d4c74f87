"""What a prediction did, as the lines ``predict.py`` and ``python -m maskcls.submit`` print."""

from __future__ import annotations

from typing import Any


def result_lines(res: dict[str, Any], tta: bool, calibrate: bool, exported: bool = False,
                 tta_crop: float | None = None) -> list[str]:
    """The written files, notes and (where ``eval/answers.csv`` exists) the scores of ``res``,
    the dict ``maskcls.inference.predict`` returns."""
    source = "exported model" if exported else f"{res['members']} model(s)"
    lines = [f"wrote {res['submission']} ({res['rows']} rows, {source}"
             f"{', tta' if tta else ''}{f', five {tta_crop:g} crops' if tta_crop else ''}"
             f"{', calibrated' if calibrate else ''})"]
    if "probs" in res:
        lines.append(f"wrote {res['probs']}")
    lines += [f"note: {note}" for note in res["notes"]]
    if "score" in res:
        s = res["score"]
        lines.append(f"score against eval/answers.csv: macro-F1 {s['f1']:.4f} over "
                     f"{s['classes_scored']} classes  accuracy {s['acc']:.4f}  F1 mask "
                     f"{s['f1_mask']:.3f}  gender {s['f1_gender']:.3f}  age {s['f1_age']:.3f}")
    if "uncalibrated_score" in res:
        lines.append(f"  without calibration: macro-F1 {res['uncalibrated_score']['f1']:.4f}")
    if "member_scores" in res:
        f1s = [m["f1"] for m in res["member_scores"]]
        lines.append("members' macro-F1: " + ", ".join(
            f"{name} {v:.4f}" for name, v in zip(res["member_names"], f1s, strict=True))
            + f"  (mean {sum(f1s) / len(f1s):.4f}); ensemble {res['score']['f1']:.4f}")
    elif res["members"] > 1:
        lines.append("members: " + ", ".join(res["member_names"]))
    return lines
