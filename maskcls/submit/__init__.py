"""The competition day in one command: ``python -m maskcls.submit [--folds K] OVERRIDE...``.

Into one folder (``--out``, default ``outputs/submit``) it writes, step by step:

1. ``0/`` ... ``K-1/``: one ``train.py`` run per fold of a person-level K-fold split, each from
   fresh weights, with the overrides given (``experiment=competition data.root=...``);
2. the sweep report (``summary.md``, ``summary_cv.csv``, pictures) and ``oof.csv``: every
   fold's validation probabilities, one row per training image;
3. ``calibration.json``: macro-F1 decision offsets fitted on those out-of-fold predictions
   (every training person, not one fold's validation share);
4. ``submission.csv``: the fold ensemble on the eval set, with test-time augmentation (the
   flip; with a recipe that trained with zoom or shift, such as ``quick`` and ``competition``,
   the five crops too: ``--tta-crop``) and the out-of-fold offsets (``predict.py ckpt=OUT
   calibrate=true`` does the same: it takes those views by default).

Run the same command again after an interruption: finished folds are kept, an interrupted
fold resumes from its ``last.ckpt``, and only the missing steps run. ``submit.json`` records
the command; the folder refuses a different one.
"""
