"""python -m maskcls.submit [--folds K] [--out DIR] OVERRIDE...: k-fold training, out-of-fold
report and calibration, and the fold ensemble's submission, in one resumable command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from maskcls import submit

if TYPE_CHECKING:
    from maskcls.submit.steps import Plan

EXAMPLES = """examples:
  python -m maskcls.submit experiment=competition data=competition data.root=/data/mask \\
      model.pretrained=true trainer=gpu --out outputs/submit-densenet
  python -m maskcls.submit experiment=quick --folds 3 --out outputs/submit-quick

Run the same command again after an interruption or an error: finished folds are kept."""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m maskcls.submit", description=submit.__doc__,
                                epilog=EXAMPLES,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("overrides", nargs="*", metavar="OVERRIDE",
                   help="train.py overrides for every fold (group=option or key=value), e.g. "
                        "experiment=competition data.root=/data/mask")
    p.add_argument("--folds", type=int, default=5,
                   help="number of person-level folds, each trained from fresh weights "
                        "(default: 5)")
    p.add_argument("--out", default="outputs/submit",
                   help="the submission's folder; the same --out continues it "
                        "(default: outputs/submit)")
    p.add_argument("--no-tta", action="store_true",
                   help="predict without test-time augmentation: no flip, and no crops "
                        "unless --tta-crop gives a share (default: with)")
    p.add_argument("--no-calibrate", action="store_true",
                   help="no decision offsets fitted on the out-of-fold predictions "
                        "(default: fitted and applied)")
    p.add_argument("--tta-crop", default="auto", metavar="SHARE",
                   help="also average five crops (corners and centre) of SHARE of the height "
                        "and width, e.g. 0.9, or none; auto (the default) takes them when the "
                        "folds trained with zoom or shift, as train.py's next: line does")
    return p


def main(argv: Sequence[str] | None = None) -> None:
    args = parser().parse_intermixed_args(argv)  # flags before or after the overrides
    # torch and Lightning load from here on: --help stays instant
    from maskcls.errors import one_line_errors
    from maskcls.submit import steps

    with one_line_errors():
        plan = steps.Plan(Path(args.out).expanduser().absolute(), args.folds,
                          list(args.overrides), tta=not args.no_tta,
                          calibrate=not args.no_calibrate,
                          tta_crop=steps.crop_setting(args.tta_crop))
        steps.check_overrides(plan.overrides, plan.folds)
        lock = steps.claim(plan)
        try:
            run(plan)
        finally:
            lock.release()


def run(plan: Plan) -> None:
    from maskcls.inference.summary import result_lines
    from maskcls.run import folder as rf
    from maskcls.submit import steps

    submission = plan.out / rf.SUBMISSION
    if submission.is_file():
        print(f"{plan.out} is complete: {submission} (give a new --out for another submission)")
        return
    steps.train_folds(plan)
    oof = steps.out_of_fold(plan)
    print(f"out-of-fold: macro-F1 {oof['f1']:.4f} over {oof['images']} images of "
          f"{oof['people']} people -> {plan.out / steps.OOF}")
    if plan.calibrate:
        print(f"  calibrated on them (share {oof['share']:g} of the fitted offsets): macro-F1 "
              f"{oof['f1_calibrated']:.4f} -> {plan.out / 'calibration.json'}")
    res = steps.predict(plan)
    print("\n".join(result_lines(res, plan.tta, plan.calibrate, tta_crop=res["tta_crop"])))
    print(f"the submission: {submission}\n"
          f"  report: {plan.out / 'summary.md'}\n"
          f"  next: {sys.executable} -m maskcls.label_issues {plan.out}")


if __name__ == "__main__":
    main()
