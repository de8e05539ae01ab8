"""``python -m shared.training --start YYYY-MM-DD --end YYYY-MM-DD [--model M] [--run-id ID]``.

The one trainer entry point: a local process (the embedded default) and the Vertex AI
CustomJob container run exactly this. Exit codes: 0 registered (promoted to candidate or
kept as a rejected version, see the card), 2 bad input or not enough history, 3 ONNX parity
failed (nothing registered), 1 a transient failure worth retrying.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import date

from shared.errors import PermanentError, TransientError
from shared.training.export import ParityError


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m shared.training",
        description="Build the feature table for the window, train and check the demand model, and "
        "register it (candidate if it beats every baseline and is not worse than the champion). "
        "Exit 0 registered, 2 bad input, 3 ONNX parity failed (nothing registered), 1 transient failure.",
    )
    parser.add_argument("--start", type=_day, required=True, help="first day of the data window")
    parser.add_argument("--end", type=_day, required=True, help="last day of the data window (inclusive)")
    parser.add_argument("--model", default=None, help="model name (default SHOPML_MODEL_NAME)")
    parser.add_argument("--run-id", default="", help="idempotency key of this run (from trigger_training)")
    parser.add_argument("--objective", choices=("tweedie", "poisson"), default="tweedie")
    parser.add_argument(
        "--cv-folds", type=int, default=2, help="expanding-window folds before the holdout (default 2)"
    )
    parser.add_argument(
        "--holdout-days",
        type=int,
        default=28,
        help="days per fold and in the holdout (default 28; a short history, e.g. 85 days, needs fewer)",
    )
    args = parser.parse_args(argv)
    if args.end < args.start:
        parser.error(f"--end {args.end} is before --start {args.start}")

    from shared.training.run import run
    from shared.training.trainer import TrainerConfig

    try:
        config = TrainerConfig(
            objective=args.objective, cv_folds=args.cv_folds, holdout_days=args.holdout_days
        )
        outcome = run(args.start, args.end, args.run_id, args.model, config)
    except ParityError as error:
        print(f"not registered: {error}", file=sys.stderr)
        return 3
    except PermanentError as error:
        print(f"training failed: {error}", file=sys.stderr)
        return 2
    except TransientError as error:
        print(f"training failed, retry: {error}", file=sys.stderr)
        return 1
    summary = {
        "model": outcome.model,
        "version": outcome.version,
        "decision": outcome.decision,
        "uri": outcome.registered.uri,
        "wape_model": outcome.card["wape_model"],
        "wape_seasonal_naive": outcome.card["wape_seasonal_naive"],
        "wape_moving_average_28": outcome.card["wape_moving_average_28"],
        "wape_zero": outcome.card["wape_zero"],
        "gate": outcome.card["gate"]["verdict"],
        "reasons": outcome.card["reasons"],
        "best_baseline": outcome.card["best_baseline"],
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
