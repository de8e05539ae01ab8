"""Post-hoc sharpening of the point forecast: ``f = s * max(ŷ, 0) ** k``.

Why: on intermittent, lumpy demand the mean forecast spreads each variant's expected units
over days that mostly sell nothing, and WAPE counts every one of them. ``k > 1`` moves mass
from the rows the model ranks low to the rows it ranks high; ``s`` puts the total back, so the
sharpened forecast sums to what the model forecast on the rows it is fitted on (it adds no
bias there). ``k = 1`` fits ``s = 1``: the identity.

``fit`` chooses ``k`` from a small grid on rows the model did not train on (the trainer uses
its last cross-validation fold), minimising WAPE subject to |bias| within the gate's bound;
``to_onnx`` appends the same arithmetic to the exported graph (Relu, Pow, Mul after the tree
ensemble's output), so serving and the parity check see one output as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from shared.errors import PermanentError
from shared.training import metrics

K_GRID: tuple[float, ...] = (1.0, 1.25, 1.5, 2.0, 2.5, 3.0)


@dataclass(frozen=True)
class Sharpening:
    k: float = 1.0
    s: float = 1.0

    @property
    def identity(self) -> bool:
        return self.k == 1.0 and self.s == 1.0

    def apply(self, forecast: np.ndarray) -> np.ndarray:
        """The post-processed forecast, in float64 (the reference the ONNX graph must match)."""
        values = np.asarray(forecast, dtype=np.float64)
        return values if self.identity else self.s * np.power(np.maximum(values, 0.0), self.k)


@dataclass(frozen=True)
class Candidate:
    k: float
    s: float
    wape: float
    bias: float
    allowed: bool  # |bias| within the bound on the fitted rows


@dataclass(frozen=True)
class Fit:
    chosen: Sharpening
    candidates: list[Candidate]

    def to_card(self) -> dict[str, Any]:
        return {"k": self.chosen.k, "s": self.chosen.s, "grid": [asdict(c) for c in self.candidates]}


def scale_for(forecast: np.ndarray, k: float) -> float:
    """``s`` such that ``sum(s * ŷ**k) == sum(ŷ)`` on these rows (1 when ``k`` is 1)."""
    base = np.maximum(np.asarray(forecast, dtype=np.float64), 0.0)
    if k == 1.0:
        return 1.0
    powered = float(np.power(base, k).sum())
    if not powered > 0:
        raise PermanentError("cannot fit sharpening: the model forecasts nothing on the fitted rows")
    return float(base.sum()) / powered


def fit(forecast: np.ndarray, actual: np.ndarray, max_abs_bias: float, grid: Sequence[float] = K_GRID) -> Fit:
    """The ``k`` of ``grid`` with the lowest WAPE on these rows among those whose |bias| is within
    ``max_abs_bias``; the identity when none is (the total is the model's, so the bias is the
    same for every ``k``: either all pass or none does)."""
    if any(k < 1 for k in grid):
        raise PermanentError(f"sharpening exponents must be at least 1, got {list(grid)}")
    actual = np.asarray(actual, dtype=np.float64)
    candidates = []
    for k in grid:
        candidate = Sharpening(float(k), scale_for(forecast, float(k)))
        sharpened = candidate.apply(forecast)
        bias = metrics.bias(actual, sharpened)
        allowed = bool(np.isfinite(bias) and abs(bias) <= max_abs_bias)
        candidates.append(Candidate(candidate.k, candidate.s, metrics.wape(actual, sharpened), bias, allowed))
    usable = [c for c in candidates if c.allowed and np.isfinite(c.wape)]
    if not usable:
        return Fit(Sharpening(), candidates)
    best = min(usable, key=lambda c: (c.wape, c.k))
    return Fit(Sharpening(best.k, best.s), candidates)


def to_onnx(onnx_model: bytes, sharpening: Sharpening) -> bytes:
    """Append ``s * Relu(y) ** k`` after the graph's single output, under the same output name."""
    if sharpening.identity:
        return onnx_model
    import onnx
    from onnx import TensorProto, helper

    model = onnx.load_from_string(onnx_model)
    graph = model.graph
    if len(graph.output) != 1:
        raise PermanentError(f"expected one output to sharpen, the graph has {len(graph.output)}")
    output = graph.output[0].name
    raw = f"{output}_unsharpened"
    for node in graph.node:  # the producer of the output now feeds the appended nodes
        node.output[:] = [raw if name == output else name for name in node.output]
    graph.initializer.extend(
        [
            helper.make_tensor("sharpen_k", TensorProto.FLOAT, [], [sharpening.k]),
            helper.make_tensor("sharpen_s", TensorProto.FLOAT, [], [sharpening.s]),
        ]
    )
    graph.node.extend(
        [
            helper.make_node("Relu", [raw], [f"{output}_nonnegative"], name="sharpen_relu"),
            helper.make_node(
                "Pow", [f"{output}_nonnegative", "sharpen_k"], [f"{output}_powered"], name="sharpen_pow"
            ),
            helper.make_node("Mul", [f"{output}_powered", "sharpen_s"], [output], name="sharpen_scale"),
        ]
    )
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())
