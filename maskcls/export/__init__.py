"""Deployment: a trained checkpoint -> a self-contained ONNX or TorchScript model
(``writer.py``, the command ``python -m maskcls.export``), and such a model read back with
its metadata (``reader.py``, used by ``predict.py model_file=``). Nothing heavy is imported
here, so the command's ``--help`` is instant."""
