"""ONNX export of a LightGBM booster and the parity check that guards registration."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from shared.errors import PermanentError

INPUT_NAME = "features"
# Parity is scale-aware: every row must satisfy |onnx - native| <= ATOL + RTOL * |native|.
# ONNX Runtime sums the trees' leaf values in float32, LightGBM in float64; the float32 sum of
# a few hundred trees carries a relative rounding error of some 1e-7 per addition (float32
# holds ~7 significant digits), and the log link's exp() passes the raw score's error on as a
# relative error of the forecast. So the tolerance must grow with the forecast: on the real
# year (wholesale demand in the hundreds) the absolute difference reached 3.0e-4 units, a
# relative 1e-6. RTOL = 1e-5 leaves 10x room over that (80 float32 ulps) and still fails a
# model whose forecasts are off by a hundredth of a percent; ATOL = 1e-4 units covers the
# forecasts near zero, where a relative bound alone would demand exact equality, and is far
# below anything a stock decision can see.
PARITY_ATOL = 1e-4
PARITY_RTOL = 1e-5
PARITY_TOLERANCE = PARITY_ATOL  # the former absolute-only bound, kept for callers that read it


class ParityError(PermanentError):
    """The ONNX model does not reproduce native LightGBM within the tolerance: do not register it."""


@dataclass(frozen=True)
class Parity:
    max_abs_diff: float
    max_rel_diff: float  # max |onnx - native| / |native| over rows with a non-zero forecast
    rows: int
    atol: float
    rtol: float
    violations: int  # rows outside atol + rtol * |native|
    worst_row: int  # the row with the largest |diff| / (atol + rtol * |native|)

    @property
    def ok(self) -> bool:
        return self.violations == 0

    @property
    def tolerance(self) -> float:
        return self.atol

    def describe(self) -> str:
        return (
            f"{self.violations} of {self.rows} rows outside |onnx - native| <= {self.atol:g} + "
            f"{self.rtol:g}*|native| (max abs difference {self.max_abs_diff:.3g}, max relative "
            f"{self.max_rel_diff:.3g})"
        )


def float32_floor(threshold: float) -> float:
    """The largest float32 value not above ``threshold`` (as a float)."""
    rounded = np.float32(threshold)
    if float(rounded) > threshold:
        rounded = np.nextafter(rounded, np.float32(-np.inf))
    return float(rounded)


def float32_thresholds(booster: object) -> object:
    """The same booster with every split threshold moved down to the nearest float32.

    The converter writes thresholds as float32 (ai.onnx.ml has no double thresholds in the
    opset it targets) rounding to nearest. A double threshold between two adjacent float32
    values may round *up* onto a value the data holds, and that value then goes left in ONNX
    and right in LightGBM: measured, 0.10 units on a forecast of 14. For a float32 input x,
    ``x <= t`` holds exactly when ``x <= float32_floor(t)``, so with the thresholds moved down
    both runtimes make the same decision on every float32 input (the trainer feeds LightGBM
    float32 values, ``dataset._assemble``, and the ONNX model takes float32).
    """
    import lightgbm

    def floor_line(match: re.Match[str]) -> str:
        values = (float32_floor(float(value)) for value in match.group(1).split())
        return "threshold=" + " ".join(repr(value) for value in values)

    text = booster.model_to_string()  # type: ignore[attr-defined]
    text = re.sub(r"^threshold=(.*)$", floor_line, text, flags=re.MULTILINE)
    # The header's tree_sizes are byte offsets of the tree blocks, which the new numbers move:
    # without them LightGBM reads the blocks one after the other.
    text = re.sub(r"^tree_sizes=.*\n", "", text, flags=re.MULTILINE)
    return lightgbm.Booster(model_str=text)


def to_onnx(booster: object, n_features: int) -> bytes:
    """Convert to an ONNX TreeEnsemble with a float32 input (thresholds as in
    ``float32_thresholds``); what is left between the two runtimes is the float32 summation of
    the trees' leaf values, which ``check_parity`` bounds."""
    import onnxmltools
    from onnxmltools.convert.common.data_types import FloatTensorType

    model = onnxmltools.convert_lightgbm(
        float32_thresholds(booster),
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


def compare(
    produced: np.ndarray, native: np.ndarray, atol: float = PARITY_ATOL, rtol: float = PARITY_RTOL
) -> Parity:
    """Row by row: is |produced - native| <= atol + rtol * |native|?"""
    if native.size == 0:
        raise ParityError("no rows to check ONNX parity on")
    diff = np.abs(produced - native)
    scale = np.abs(native)
    allowed = atol + rtol * scale
    nonzero = scale > 0
    relative = diff[nonzero] / scale[nonzero]
    return Parity(
        max_abs_diff=float(diff.max()),
        max_rel_diff=float(relative.max()) if relative.size else 0.0,
        rows=int(native.size),
        atol=atol,
        rtol=rtol,
        violations=int(np.count_nonzero(~(diff <= allowed))),  # NaN counts as a violation
        worst_row=int(np.argmax(np.where(np.isnan(diff), np.inf, diff / allowed))),
    )


def check_parity(
    onnx_model: bytes,
    native: np.ndarray,
    features: np.ndarray,
    atol: float = PARITY_ATOL,
    rtol: float = PARITY_RTOL,
) -> Parity:
    """ONNX Runtime against native LightGBM on the same rows, with the scale-aware bound."""
    if features.shape[0] == 0:
        raise ParityError("no rows to check ONNX parity on")
    produced = onnx_predict(onnx_session(onnx_model, threads=2), features)
    return compare(produced, np.asarray(native, dtype=np.float64), atol, rtol)
