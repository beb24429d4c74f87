"""Turn checkpoints into a competition submission.

    python predict.py ckpt=outputs/2026-12-04/09-15-02.418331-quick-resnet10t  # a run's best.ckpt
    python predict.py ckpt=outputs/multirun/2026-12-04/09-15-02              # a fold ensemble
    python predict.py ckpt=path/to/best.ckpt save_probs=true output=sub.csv
    python predict.py ckpt=outputs/<date>/<time> tta=false   # one view: no flip, no crops
    python predict.py model_file=outputs/2026-12-04/09-15-02.418331-resnet18/model.onnx  # exported

By default each image is averaged with its mirror image and, for a run trained with zoom or
shift (quick, competition), with its five 0.9 crops: the views the run trained on.
"""

import sys
import warnings
from pathlib import Path

import hydra
from omegaconf import DictConfig

from maskcls.errors import one_line_errors
from maskcls.run.overrides import check_argv

# Library deprecation chatter that users can do nothing about.
warnings.filterwarnings("ignore", message=".*LeafSpec.*")


@hydra.main(config_path="conf", config_name="predict", version_base="1.3")
def main(cfg: DictConfig) -> None:
    # torch and Lightning load here, not at import: `predict.py --help` stays instant
    from maskcls.config import PredictSettings, settings
    from maskcls.inference import predict
    from maskcls.inference.summary import result_lines

    with one_line_errors():
        asked = settings(cfg, PredictSettings)
        res = predict(asked)
    print("\n".join(result_lines(res, asked.tta, asked.calibrate, asked.model_file is not None,
                                  res["tta_crop"])))

if __name__ == "__main__":
    check_argv(sys.argv[1:], Path(__file__).parent / "conf", "predict")
    main()
