"""``python -m maskcls``: every command of the project, one line each (nothing heavy loads)."""

import argparse
from collections.abc import Sequence

COMMANDS = [
    ("python train.py [group=option ...] [key=value ...]", "train one run; -m: a sweep or k-fold"),
    ("python predict.py ckpt=RUN|SWEEP [tta=true calibrate=true]",
     "checkpoints -> submission.csv (a sweep: the fold ensemble)"),
    ("python -m maskcls.submit [--folds 5] --out DIR OVERRIDE...",
     "the competition day: k-fold, oof.csv, OOF calibration, TTA ensemble, submission.csv"),
    ("python -m maskcls.synth --out DIR", "write a synthetic tree in the competition layout"),
    ("python -m maskcls.data.catalog ROOT", "people, images per class, problems of a tree"),
    ("python -m maskcls.faces ROOT", "one face box per photo -> ROOT/face_boxes.csv"),
    ("python -m maskcls.preview [key=value ...] --out DIR",
     "the data as a run sees it: classes, augmentation, face crops"),
    ("python -m maskcls.report SWEEP", "a sweep's tables, cross-validation and pictures"),
    ("python -m maskcls.label_issues SWEEP", "suspected label errors from out-of-fold predictions"),
    ("python -m maskcls.export ckpt=RUN [format=onnx|torchscript]",
     "a run as a self-contained ONNX / TorchScript model"),
    ("make test | make lint | make docs-figures", "the test suite, the linter, the docs' pictures"),
]


def main(argv: Sequence[str] | None = None) -> None:
    argparse.ArgumentParser(prog="python -m maskcls", description=__doc__).parse_args(argv)
    width = max(len(c) for c, _ in COMMANDS)
    print("maskcls commands (each takes --help; README.md and docs/ say more):\n")
    for command, what in COMMANDS:
        print(f"  {command:<{width}}  {what}")


if __name__ == "__main__":
    main()
