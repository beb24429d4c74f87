"""python -m maskcls.export ckpt=RUN [format=onnx|torchscript] [output=FILE] [overwrite=true]:
a run's best checkpoint as a self-contained model file (see ``writer.py``)."""

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from maskcls.errors import one_line_errors
from maskcls.run.overrides import check_argv

CONF = Path(__file__).resolve().parents[2] / "conf"


@hydra.main(config_path=str(CONF), config_name="export", version_base="1.3")
def main(cfg: DictConfig) -> None:
    # torch, onnx and Lightning load here: --help stays instant
    from maskcls.config import ExportSettings, settings
    from maskcls.export.writer import export
    from maskcls.run import folder as rf

    with one_line_errors():
        res = export(settings(cfg, ExportSettings))
    h, w = res["image_size"]
    path = Path(res["path"]).absolute()
    submission = path.with_name(f"submission_{path.stem}.csv")  # beside the run's own
    print(f"wrote {res['path']} ({res['bytes'] / 2**20:.1f} MiB) from {res['checkpoint']}\n"
          f"  input uint8 (N, 3, {h}, {w}) RGB pixels, output (N, 18) probabilities; "
          f"max difference from the checkpoint {res['max_diff']:.1e}\n"
          f"  next: {rf.predict_command(f'model_file={path}', f'output={submission}')}")


if __name__ == "__main__":
    check_argv(sys.argv[1:], CONF, "export")
    main()
