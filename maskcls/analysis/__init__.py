"""What runs and sweeps are read through: the figures (``plots``), the image galleries
(``galleries``) and the one markdown table writer (``tables``)."""
