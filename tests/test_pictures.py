"""Every picture the project writes is readable at 100% zoom: no text below MIN_TEXT_PX
pixels high at the resolution it is saved with, and no text drawn over another panel's image.
Each picture is caught as it is saved, from the code path a user runs."""

from __future__ import annotations

import shutil

import pytest
from matplotlib.figure import Figure
from matplotlib.text import Text

MIN_TEXT_PX = 10  # a 10-pixel-high letter: about 7.5 pt at 96 dpi, the smallest easily read


def problems(fig: Figure, dpi: float) -> list[str]:
    """What makes ``fig`` hard to read when saved at ``dpi``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    found = []
    hidden = {id(t) for ax in fig.axes if not ax.axison  # axis("off"): ticks never drawn
              for t in [*ax.get_xticklabels(), *ax.get_yticklabels(), ax.xaxis.label,
                        ax.yaxis.label]}
    texts = [t for t in fig.findobj(Text)
             if t.get_visible() and t.get_text().strip() and id(t) not in hidden]
    image_axes = [ax for ax in fig.axes if ax.images and ax.get_visible()]
    for t in texts:
        px = t.get_fontsize() * dpi / 72
        if px < MIN_TEXT_PX - 0.05:
            found.append(f"{t.get_text()[:40]!r}: {px:.1f} px high")
        box = t.get_window_extent(renderer)
        for ax in image_axes:
            if t.axes is ax or t in ax.texts:
                continue
            if box.overlaps(ax.get_window_extent(renderer)):
                found.append(f"{t.get_text()[:40]!r} is drawn over another panel's image")
                break
    return found


@pytest.fixture
def saved(monkeypatch):
    """Every figure saved while the test runs, with the dpi it is saved at."""
    figures: list[tuple[str, Figure, float]] = []
    real = Figure.savefig

    def keep(self, fname, *args, **kwargs):
        figures.append((str(fname), self, kwargs.get("dpi", self.dpi)))
        return real(self, fname, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", keep)
    return figures


def _check(figures: list[tuple[str, Figure, float]], expected: set[str]) -> None:
    names = {str(f).rsplit("/", 1)[-1] for f, _, _ in figures}
    assert expected <= names, names
    bad = {name: problems(fig, dpi) for name, fig, dpi in figures}
    assert not {k: v for k, v in bad.items() if v}


def test_a_run_folders_pictures_are_readable(synth_root, tmp_path, saved):
    from conftest import make_cfg

    from maskcls.training.recipe import train

    train(make_cfg(synth_root, tmp_path / "run"))
    _check(saved, {"confusion_matrix.png", "learning_curve.png", "errors.png"})


def test_a_sweeps_pictures_are_readable(fold_runs, tmp_path, saved):
    from maskcls.report import write_report

    sweep = tmp_path / "sweep"
    shutil.copytree(fold_runs, sweep)
    for f in sweep.glob("summary*"):
        f.unlink()
    write_report(sweep)
    _check(saved, {"summary.png", "summary_epochs.png"})


def test_the_previews_are_readable(synth_root, tmp_path, saved):
    from maskcls.preview import write

    write([f"data.root={synth_root}", "data.synthetic=null", "data.image_size=[32,24]"],
          tmp_path, per_class=1, variants=2)
    _check(saved, {"preview_classes.png", "preview_augment.png"})


def test_the_label_issue_gallery_is_readable(fold_runs, tmp_path, saved):
    from maskcls.label_issues import write

    write([fold_runs], tmp_path, top=5, min_f1=0)
    _check(saved, {"label_issues.png"})
