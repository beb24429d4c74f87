"""Turn checkpoints into a competition submission.

    python predict.py ckpt=outputs/2026-12-04/09-15-02.418331-quick-resnet18  # a run's best.ckpt
    python predict.py ckpt=outputs/multirun/2026-12-04/09-15-02 tta=true     # a fold ensemble
    python predict.py ckpt=path/to/best.ckpt tta=true save_probs=true output=sub.csv
    python predict.py model_file=outputs/2026-12-04/09-15-02.418331-resnet18/model.onnx  # exported
"""

import sys
import warnings
from pathlib import Path

import hydra
from omegaconf import DictConfig

from maskcls.config_checks import check_accelerator, check_values
from maskcls.errors import MaskclsError
from maskcls.run.overrides import check_argv

# Library deprecation chatter that users can do nothing about.
warnings.filterwarnings("ignore", message=".*LeafSpec.*")


@hydra.main(config_path="conf", config_name="predict", version_base="1.3")
def main(cfg: DictConfig) -> None:
    # torch and Lightning load here, not at import: `predict.py --help` stays instant
    from maskcls.inference import predict

    try:
        check_values(cfg)
        check_accelerator(cfg.accelerator, key="accelerator")
        ckpt = cfg.ckpt if isinstance(cfg.ckpt, str | None) else [str(c) for c in cfg.ckpt]
        res = predict(ckpt, cfg.data.root, cfg.output, cfg.tta, cfg.save_probs,
                      cfg.batch_size, cfg.num_workers, cfg.accelerator, cfg.calibrate,
                      cfg.face_boxes, cfg.model_file, cfg.overwrite)
    except MaskclsError as e:
        raise SystemExit(f"error: {e}") from None
    source = "exported model" if cfg.model_file else f"{res['members']} model(s)"
    print(f"wrote {res['submission']} ({res['rows']} rows, {source}"
          f"{', tta' if cfg.tta else ''}{', calibrated' if cfg.calibrate else ''})")
    if "probs" in res:
        print(f"wrote {res['probs']}")
    for note in res["notes"]:
        print(f"note: {note}")
    if "score" in res:
        s = res["score"]
        print(f"score against eval/answers.csv: macro-F1 {s['f1']:.4f} over "
              f"{s['classes_scored']} classes  accuracy {s['acc']:.4f}  "
              f"F1 mask {s['f1_mask']:.3f}  gender {s['f1_gender']:.3f}  age {s['f1_age']:.3f}")
    if "uncalibrated_score" in res:
        print(f"  without calibration: macro-F1 {res['uncalibrated_score']['f1']:.4f}")
    if "member_scores" in res:
        f1s = [m["f1"] for m in res["member_scores"]]
        print("members' macro-F1: " + ", ".join(
            f"{name} {v:.4f}" for name, v in zip(res["member_names"], f1s, strict=True))
              + f"  (mean {sum(f1s) / len(f1s):.4f}); ensemble {res['score']['f1']:.4f}")
    elif res["members"] > 1:
        print("members: " + ", ".join(res["member_names"]))


if __name__ == "__main__":
    check_argv(sys.argv[1:], Path(__file__).parent / "conf", "predict")
    main()
