"""Prediction: trained models (checkpoints or exported files) -> probabilities -> submission.

``scorers``: one loop over the eval images for every model, flip-TTA and ensembling once;
``submission``: what ``predict.py`` does with it (outputs, calibration, the local score).
"""

from maskcls.inference.submission import Source, predict, predict_probs, read_answers

__all__ = ["Source", "predict", "predict_probs", "read_answers"]
