"""ONNX export of a LightGBM booster and the parity check that guards registration."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from shared.errors import PermanentError

INPUT_NAME = "features"
PARITY_TOLERANCE = 1e-4


class ParityError(PermanentError):
    """The ONNX model does not reproduce native LightGBM within the tolerance: do not register it."""


@dataclass(frozen=True)
class Parity:
    max_abs_diff: float
    rows: int
    tolerance: float

    @property
    def ok(self) -> bool:
        return self.max_abs_diff <= self.tolerance


def to_onnx(booster: object, n_features: int) -> bytes:
    """Convert to an ONNX TreeEnsemble with a float32 input.

    The converter writes split thresholds as float32 (ai.onnx.ml has no double thresholds in
    the opset it targets). A double input just above a double threshold can then fall on the
    other side of the rounded one: measured here, errors up to 0.06 units. So the trainer
    feeds LightGBM float32 values (``dataset._assemble``) and the model takes float32: both
    make the same comparisons, and the difference left is float32 summation of the trees.
    """
    import onnxmltools
    from onnxmltools.convert.common.data_types import FloatTensorType

    model = onnxmltools.convert_lightgbm(
        booster,
        initial_types=[(INPUT_NAME, FloatTensorType([None, n_features]))],
        target_opset=15,
        zipmap=False,
    )
    return bytes(model.SerializeToString())


def onnx_session(onnx_model: bytes, threads: int = 1) -> object:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(onnx_model, options, providers=["CPUExecutionProvider"])


def onnx_predict(session: object, features: np.ndarray, batch: int = 200_000) -> np.ndarray:
    outputs = []
    for start in range(0, features.shape[0], batch):
        chunk = np.ascontiguousarray(features[start : start + batch], dtype=np.float32)
        outputs.append(np.asarray(session.run(None, {INPUT_NAME: chunk})[0], dtype=np.float64).ravel())  # type: ignore[attr-defined]
    return np.concatenate(outputs) if outputs else np.empty(0)


def check_parity(
    onnx_model: bytes, native: np.ndarray, features: np.ndarray, tolerance: float = PARITY_TOLERANCE
) -> Parity:
    """Max absolute difference between ONNX Runtime and native LightGBM on the same rows."""
    if features.shape[0] == 0:
        raise ParityError("no rows to check ONNX parity on")
    produced = onnx_predict(onnx_session(onnx_model, threads=2), features)
    diff = float(np.max(np.abs(produced - native)))
    return Parity(max_abs_diff=diff, rows=int(features.shape[0]), tolerance=tolerance)
