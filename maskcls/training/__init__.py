"""Training: what ``train.py`` does (``recipe``: check, build, fit, results), the experiment
trackers (``trackers``) and the progress display (``progress``)."""
