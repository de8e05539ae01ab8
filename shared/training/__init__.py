"""Training: direct multi-horizon LightGBM demand model, baselines, ONNX export, model card.

Imports lightgbm / onnxruntime lazily: ``trigger_training`` and request paths must not pay
for them. Entry point: ``python -m shared.training`` (see ``__main__``).
"""
