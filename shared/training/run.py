"""One training run with its I/O: features from the warehouse, champion and registration
through the registry, a ``model-events`` message through the publisher."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import date
from typing import Any

from shared import bootstrap
from shared.logs import get_logger
from shared.ports import EventPublisher, ModelRegistry, ModelVersion, Warehouse
from shared.training.export import ParityError
from shared.training.gate import GateRules
from shared.training.trainer import Champion, TrainerConfig, TrainingResult, next_version, train

CHAMPION_ALIASES: tuple[str, ...] = ("live", "candidate")


@dataclass(frozen=True)
class RunOutcome:
    model: str
    version: str
    decision: str
    registered: ModelVersion
    card: dict[str, Any]
    feature_seconds: float


def find_champion(registry: ModelRegistry, model: str) -> Champion | None:
    """The model serving now (alias ``live``, from the deployment step on); before anything is
    deployed, the newest ``candidate``, so nightly runs still compete with each other."""
    for alias in CHAMPION_ALIASES:
        found = registry.get(model, alias)
        if found is not None:
            return Champion(found.version, found.card, registry.load_onnx(found))
    return None


def run(
    start: date,
    end: date,
    run_id: str = "",
    model: str | None = None,
    config: TrainerConfig | None = None,
    warehouse: Warehouse | None = None,
    registry: ModelRegistry | None = None,
    publisher: EventPublisher | None = None,
) -> RunOutcome:
    from shared.features.build import build_features
    from shared.registry import register_model

    settings = bootstrap.settings()
    logger = get_logger("trainer", settings.log_level)
    model = model or settings.model_name
    warehouse = warehouse or bootstrap.warehouse()
    registry = registry or bootstrap.registry()
    publisher = publisher or bootstrap.publisher()

    started = time.perf_counter()
    frame = build_features(warehouse, start, end)
    feature_seconds = time.perf_counter() - started
    logger.info("feature table built", rows=len(frame), seconds=round(feature_seconds, 2), run_id=run_id)

    champion = find_champion(registry, model)
    rules = GateRules.from_settings(settings)
    result: TrainingResult = train(
        frame, config, champion, tolerance=settings.champion_tolerance, gate_rules=rules
    )
    if not result.parity.ok:
        raise ParityError(
            f"ONNX parity failed: {result.parity.describe()} on the holdout; the model is not registered"
        )
    version = next_version(registry.versions(model), result.card["features"])
    card = {
        "model": model,
        "version": version,
        "run_id": run_id,
        **result.card,
        "timings": {**result.card["timings"], "features_s": round(feature_seconds, 3)},
    }
    registered = register_model(
        registry, publisher, model, version, result.onnx_model, card, promote=result.promoted
    )
    logger.info(
        "model registered",
        model=model,
        version=version,
        decision=result.decision,
        wape_model=card["wape_model"],
        wape_seasonal_naive=card["wape_seasonal_naive"],
        gate=card["gate"]["verdict"],
        reasons=card["reasons"],
        best_baseline=card["best_baseline"],
        run_id=run_id,
    )
    return RunOutcome(model, version, result.decision, registered, card, feature_seconds)
