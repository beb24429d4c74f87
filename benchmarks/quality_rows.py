"""The rows of ``benchmarks.quality``: the recipes, and quick with one item switched off or on.
A row is a name and the ``train.py`` overrides it adds; rows that only change prediction
(calibration, TTA) name the row whose run they predict."""

from __future__ import annotations

from dataclasses import dataclass, field

from maskcls.run.folder import CROP_VIEWS


@dataclass
class Row:
    name: str
    overrides: list[str] = field(default_factory=list)
    tta: bool = False
    tta_crop: float | None = None  # predict.py tta_crop: five crops of this share averaged too
    calibrate: bool = False
    run: str | None = None  # predict another row's run instead of training
    pseudo_from: str | None = None  # train on this row's confident eval predictions
    face_boxes: bool = False  # crop to boxes from python -m maskcls.faces


# how quick's runs are predicted (predict.py tta=true tta_crop=0.9): the image, its five 0.9
# crops and the mirror image of each; the rows compared with quick are predicted the same way
QUICK_VIEWS = {"tta": True, "tta_crop": CROP_VIEWS}

RECIPES = [
    Row("baseline (starter code)", ["experiment=baseline"]),
    Row("default", []),
    Row("quick", ["experiment=quick"], **QUICK_VIEWS),
    # quick until 2026-12-07: resnet18 for 24 epochs in the time resnet10t takes for 36, no crop
    Row("quick on resnet18 (until 2026-12-07)", ["experiment=quick", "model.backbone=resnet18",
                                                 "trainer.max_epochs=24",
                                                 "data.center_crop=null", "data.age_sigma=0"],
        tta=True),
    # the same recipe from another seed: the seed-to-seed spread any gain must beat
    Row("quick, seed 43", ["experiment=quick", "seed=43"], **QUICK_VIEWS),
]
# quick with one item of the recipe switched off, or one it leaves out switched on
ABLATIONS = [
    # the competition data group under quick: quick must set all it depends on
    Row("quick, data=competition", ["data=competition", "experiment=quick"], **QUICK_VIEWS),
    # quick before its epochs went from 16 to 24: what the longer run gains
    Row("quick, 16 epochs", ["experiment=quick", "trainer.max_epochs=16"], **QUICK_VIEWS),
    Row("quick, single head", ["experiment=quick", "model.head=single"], **QUICK_VIEWS),
    Row("quick + mixup/cutmix", ["experiment=quick", "augment.mixup=0.2", "augment.cutmix=1.0",
                                 "augment.mix_prob=0.5"], **QUICK_VIEWS),
    Row("quick + EMA", ["experiment=quick", "callbacks=ema"], **QUICK_VIEWS),
    # the face crop replaces quick's centre crop (the two would crop twice)
    Row("quick + face crop (detected)", ["experiment=quick", "data.center_crop=null"],
        **QUICK_VIEWS, face_boxes=True),
    Row("quick + SMOTE", ["experiment=quick", "data.smote=true"], **QUICK_VIEWS),
    Row("quick + oversample=weighted", ["experiment=quick", "data.oversample=weighted"],
        **QUICK_VIEWS),
    Row("quick + oversample=repeat", ["experiment=quick", "data.oversample=repeat"], **QUICK_VIEWS),
    Row("quick + pseudo-labels (round 2)", ["experiment=quick"], **QUICK_VIEWS,
        pseudo_from="quick"),
    # on a 300-person tree 24 epochs take half the 5-minute budget: what the rest would give
    # measured with resnet18 (docs/results.md, 2026-12-05); pinned, or since quick moved to
    # resnet10t it would be the same run as "quick, resnet10t, 40 epochs"
    Row("quick, 40 epochs", ["experiment=quick", "model.backbone=resnet18",
                             "trainer.max_epochs=40"], **QUICK_VIEWS),
    # colour jitter may wash out colour cues (grey hair, lip colour)
    Row("quick, no colour jitter", ["experiment=quick", "augment.brightness=0",
                                    "augment.contrast=0", "augment.saturation=0"], **QUICK_VIEWS),
    # ... or, since switching it off lost most on the styles furthest from the others, more of
    # it: held-out styles differ in colour cast, so a wider jitter may carry further
    Row("quick, colour jitter 0.35", ["experiment=quick", "augment.brightness=0.35",
                                      "augment.contrast=0.35", "augment.saturation=0.35"],
        **QUICK_VIEWS),
    Row("quick, colour jitter 0.35 + hue 0.05", ["experiment=quick", "augment.brightness=0.35",
                                                 "augment.contrast=0.35",
                                                 "augment.saturation=0.35", "augment.hue=0.05"],
        **QUICK_VIEWS),
    # inverse-frequency class weights (per task with the per-task head): the rare 60+ classes
    # weigh as much as the common ones
    Row("quick + class-weighted loss", ["experiment=quick", "loss=weighted_ce"], **QUICK_VIEWS),
    # logit adjustment: the logits learn the balanced posterior, the rare class wins its images
    Row("quick + logit-adjusted loss", ["experiment=quick", "loss=logit_adjusted"], **QUICK_VIEWS),
    Row("quick, 40 epochs + logit-adjusted loss", ["experiment=quick", "trainer.max_epochs=40",
                                                   "loss=logit_adjusted"], **QUICK_VIEWS),
    # more optimizer steps in the same images: quick takes about 11 steps an epoch on a
    # 300-person tree (keep_masked=1), 270 in all, and its training F1 was still rising
    Row("quick, batch 32", ["experiment=quick", "data.batch_size=32"], **QUICK_VIEWS),
    Row("quick, batch 16", ["experiment=quick", "data.batch_size=16"], **QUICK_VIEWS),
    Row("quick, lr 0.004", ["experiment=quick", "optimizer.lr=0.004"], **QUICK_VIEWS),
    # stronger decoupled weight decay (AdamW's is 0.01): from scratch on 240 people the
    # network fits its training set long before the last epoch
    Row("quick, weight decay 0.05", ["experiment=quick", "optimizer.weight_decay=0.05"],
        **QUICK_VIEWS),
    Row("quick, weight decay 0.2", ["experiment=quick", "optimizer.weight_decay=0.2"],
        **QUICK_VIEWS),
    Row("quick, batch 32 + logit-adjusted loss", ["experiment=quick", "data.batch_size=32",
                                                  "loss=logit_adjusted"], **QUICK_VIEWS),
    # a training age boundary below 60: the 58-59s, whose faces overlap the 60+ ones, are
    # taught as 60+, so the rare group is predicted where it is likely (eval keeps 60)
    Row("quick, age boundary 58", ["experiment=quick", "data.age_bounds=[30,58]"], **QUICK_VIEWS),
    # the recorded age as an ordinal signal: every person teaches the ageing ramp
    Row("quick + age regression", ["experiment=quick", "model.age_regression=1"], **QUICK_VIEWS),
    Row("quick, age loss weight 2", ["experiment=quick", "model.task_weights.age=2"],
        **QUICK_VIEWS),
    Row("quick, batch 32 + logit-adjusted loss, age boundary 58",
        ["experiment=quick", "data.batch_size=32", "loss=logit_adjusted",
         "data.age_bounds=[30,58]"], **QUICK_VIEWS),
    # more epochs in the same time: timm's resnet10t (deep stem, one block a stage) trains
    # about 1.65x as many images a second as resnet18 at 80x60 on a 2-core CPU
    Row("quick, resnet10t, 40 epochs", ["experiment=quick", "model.backbone=resnet10t",
                                        "trainer.max_epochs=40"], **QUICK_VIEWS),
    # more pixels per face in the same time: quick shrank the whole 384x512 photo to 80x60,
    # though the face and hair fill its middle; since 2026-12-07 it crops to the middle first
    # (data.center_crop=[0.8,0.85]). These rows reproduce it without the crop, from both
    # seeds, and try a tighter crop, or a larger image with fewer epochs in the same time
    Row("quick without centre crop (until 2026-12-07)",
        ["experiment=quick", "data.center_crop=null", "data.age_sigma=0"], tta=True),
    Row("quick without centre crop, seed 43",
        ["experiment=quick", "data.center_crop=null", "data.age_sigma=0", "seed=43"], tta=True),
    Row("quick, centre crop 0.7x0.75", ["experiment=quick", "data.center_crop=[0.7,0.75]"],
        **QUICK_VIEWS),
    Row("quick, 96x72, 25 epochs", ["experiment=quick", "data.image_size=[96,72]",
                                    "trainer.max_epochs=25"], **QUICK_VIEWS),
    # softer targets: a network that is never sure may put the rare 60+ class where it is
    # likely, and generalise better across styles (PyTorch's smoothing, 0.1 on every task)
    Row("quick + label smoothing 0.1", ["experiment=quick", "loss=label_smoothing"], **QUICK_VIEWS),
    # soft age groups: each recorded age spread over the groups by a normal of sigma years, so
    # a 58-59-year-old (whose face overlaps the 60+ ones) teaches "maybe 60+" and the network
    # puts the rare group where it is likely (data.age_sigma; the 60+ stay 60+). Sigma 6 won
    # on the pilot styles by +0.083 and, with the crop views, +0.023 on twelve held-out runs:
    # quick since 2026-12-07 (the row "quick + soft age groups, sigma 6" composes the same run)
    Row("quick + soft age groups, sigma 2", ["experiment=quick", "data.age_sigma=2"],
        **QUICK_VIEWS),
    Row("quick + soft age groups, sigma 4", ["experiment=quick", "data.age_sigma=4"],
        **QUICK_VIEWS),
    Row("quick + soft age groups, sigma 6", ["experiment=quick", "data.age_sigma=6"],
        **QUICK_VIEWS),
    Row("quick + soft age groups, sigma 8", ["experiment=quick", "data.age_sigma=8"],
        **QUICK_VIEWS),
    # the decision offsets each run fits on its validation people, on the soft-age run: its
    # 60+ scores are spread, so an offset may trade 60+ recall for 30-59 precision
    Row("quick + soft age groups, sigma 6, calibrated", **QUICK_VIEWS, calibrate=True,
        run="quick + soft age groups, sigma 6"),
    Row("quick + calibration", **QUICK_VIEWS, calibrate=True, run="quick"),
    Row("quick - TTA", run="quick"),
    # quick until 2026-12-07: hard age groups, predicted with the flip alone; then each of the
    # two changes alone (the crops on its run, the soft age groups on quick's)
    Row("quick with hard age groups, flip TTA (until 2026-12-07)",
        ["experiment=quick", "data.age_sigma=0"], tta=True),
    Row("quick with hard age groups", **QUICK_VIEWS,
        run="quick with hard age groups, flip TTA (until 2026-12-07)"),
    Row("quick, flip TTA only", tta=True, run="quick"),
]
