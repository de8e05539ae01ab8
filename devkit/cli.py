"""``shopml``: the one command-line tool for everything a person runs.

Every subcommand imports what it needs only when it runs, so ``shopml --help`` answers at
once. Settings come from the environment (``SHOPML_HOME``, ``SHOPML_WAREHOUSE``, ...; see the
README): the same commands work on the local stack and, with cloud settings, on GCP.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from datetime import date
from pathlib import Path

EXIT_CODES = """exit codes:
  0  done
  1  failed (a transient failure worth retrying, or a part of the stack is down)
  2  bad input (a wrong argument, a file that cannot be read, not enough history)
  3  train: ONNX parity failed, nothing registered; deploy/rollback: refused (a gate failed,
     nothing to roll back to, a concurrent change won)
  130 interrupted (Ctrl-C)"""


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def _home(args: argparse.Namespace) -> Path:
    from shared.settings import get_settings

    return Path(args.home) if getattr(args, "home", None) else get_settings().home


# --- stack --------------------------------------------------------------------------------------


def cmd_stack(args: argparse.Namespace) -> int:
    from devkit.local.__main__ import run_stack_command

    return run_stack_command(
        args.action, _home(args), args.foreground, args.feature_server, args.predict_instances
    )


# --- demo ---------------------------------------------------------------------------------------


def cmd_demo(args: argparse.Namespace) -> int:
    from devkit.demo import main as demo_main

    return demo_main(["--quick"] if args.quick else [])


# --- import-orders ------------------------------------------------------------------------------


def cmd_import_orders(args: argparse.Namespace) -> int:
    path = Path(args.file)
    if not path.is_file():
        print(f"error: {path} is not a file (give an order export: UCI Online Retail or Shopify CSV)")
        return 2
    from devkit.importer import import_orders
    from devkit.progress import Progress
    from shared import bootstrap
    from shared.bootstrap import close_warehouse
    from shared.errors import PermanentError, TransientError

    warehouse = bootstrap.warehouse()
    try:
        with Progress(f"importing {path.name}", total=None, unit="lines") as progress:
            report = import_orders(
                path,
                warehouse=warehouse,
                shop_domain=args.shop,
                fmt=args.format,
                progress=lambda lines: progress.update(count=lines),
            )
    except PermanentError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except TransientError as exc:
        print(f"error, worth retrying: {exc}", file=sys.stderr)
        return 1
    finally:
        close_warehouse(warehouse)
    print(report.summary())
    if args.json:
        print(json.dumps(report.as_dict(), default=str))
    return 0


# --- train --------------------------------------------------------------------------------------


def cmd_train(args: argparse.Namespace) -> int:
    import os

    from devkit.deploy_cli import resolve_settings
    from devkit.unannounced import UnannouncedPublisher
    from shared import bootstrap
    from shared.training.__main__ import main as train_main

    settings, where = resolve_settings(None)
    unannounced = UnannouncedPublisher()
    if not settings.pubsub_emulator_host and not os.environ.get("GOOGLE_CLOUD_PROJECT"):
        bootstrap.override(settings=settings, publisher=unannounced)
        where = f"the local files under {settings.home} (no stack running)"
    else:
        bootstrap.override(settings=settings)
    print(f"training against {where}", file=sys.stderr)

    argv = ["--start", args.start.isoformat(), "--end", args.end.isoformat(), "--objective", args.objective]
    argv += ["--cv-folds", str(args.cv_folds), "--holdout-days", str(args.holdout_days)]
    if args.model:
        argv += ["--model", args.model]
    if args.run_id:
        argv += ["--run-id", args.run_id]
    try:
        code = train_main(argv)
    finally:
        bootstrap.reset()
    if unannounced.skipped:
        print(
            "no local stack and no GOOGLE_CLOUD_PROJECT: registered without a model-events message "
            "(start the stack with `shopml stack up` to have deploy_model act on it)",
            file=sys.stderr,
        )
    return code


# --- features -----------------------------------------------------------------------------------


def cmd_features(args: argparse.Namespace) -> int:
    from shared.features.__main__ import main as features_main

    argv = [args.action]
    if args.home:
        argv += ["--home", str(args.home)]
    if args.start:
        argv += ["--start", args.start.isoformat()]
    if args.end:
        argv += ["--end", args.end.isoformat()]
    if args.from_offline:
        argv.append("--from-offline")
    return features_main(argv)


# --- deploy / rollback --------------------------------------------------------------------------


def cmd_deploy(args: argparse.Namespace) -> int:
    from devkit.deploy_cli import run_deploy

    return run_deploy(
        args.model,
        args.version,
        force=args.force,
        reason=args.reason,
        requested_by=args.requested_by,
        home=args.home,
        as_json=args.json,
    )


def cmd_rollback(args: argparse.Namespace) -> int:
    from devkit.deploy_cli import run_rollback

    return run_rollback(
        args.model,
        args.reason,
        requested_by=args.requested_by,
        idempotency_key=args.idempotency_key,
        via_topic=args.via_topic,
        wait_seconds=args.wait,
        home=args.home,
        as_json=args.json,
    )


# --- drift --------------------------------------------------------------------------------------


def cmd_drift(args: argparse.Namespace) -> int:
    from devkit.drift_cli import run_drift

    return run_drift(args.reference, args.current, args.out)


# --- simulate -----------------------------------------------------------------------------------


def cmd_simulate(args: argparse.Namespace) -> int:
    from devkit.simulator.__main__ import main as simulator_main

    return simulator_main(list(args.rest))


# --- parser -------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="shopml",
        description="Event-driven MLOps for Shopify stores on Google Cloud: the local stack, the demo, "
        "order imports, training and the feature store, from one command.",
        epilog=EXIT_CODES + "\n\nEvery subcommand honours SHOPML_HOME (local state, default .shopml/).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    def add(
        name: str, handler: Callable[[argparse.Namespace], int], help_text: str
    ) -> argparse.ArgumentParser:
        sub = commands.add_parser(
            name, help=help_text, description=help_text, epilog=EXIT_CODES,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )  # fmt: skip
        sub.set_defaults(handler=handler)
        return sub

    stack = add("stack", cmd_stack, "start, stop or inspect the local stack (emulators + functions)")
    stack.add_argument("action", choices=["up", "down", "status"])
    stack.add_argument(
        "--home", type=Path, default=None, help="state folder (default: SHOPML_HOME or .shopml)"
    )
    stack.add_argument("--foreground", action="store_true", help="with up: stay attached; Ctrl-C stops it")
    stack.add_argument(
        "--feature-server",
        action="store_true",
        help="with up: also run the Feast feature server (~5 s, ~390 MB) and point the functions at it",
    )
    stack.add_argument(
        "--predict-instances",
        type=int,
        default=1,
        help="with up: how many predict processes (predict, predict-2, ...) follow the live pointer",
    )

    demo = add("demo", cmd_demo, "run the pipeline end to end on the local stack and write demo-report/")
    demo.add_argument("--quick", action="store_true", help="a smaller run (under 90 s)")

    imp = add(
        "import-orders",
        cmd_import_orders,
        "import a store's order history from a file (UCI Online Retail or a Shopify order export) "
        "into the warehouse, through the same validation as webhooks; importing twice adds nothing",
    )
    imp.add_argument("file", help="the CSV file (.csv or .csv.gz)")
    imp.add_argument("--shop", default=None, help="shop domain the orders belong to (default per format)")
    imp.add_argument("--format", choices=["auto", "uci", "shopify"], default="auto", help="file layout")
    imp.add_argument("--json", action="store_true", help="also print the report as one JSON line")

    train = add(
        "train",
        cmd_train,
        "build features for the window, train, check and register the demand model (promoted only "
        "when it beats every baseline and the champion)",
    )
    train.add_argument("--start", type=_day, required=True, help="first day of the data window")
    train.add_argument("--end", type=_day, required=True, help="last day of the data window (inclusive)")
    train.add_argument("--model", default=None, help="model name (default SHOPML_MODEL_NAME)")
    train.add_argument("--run-id", default="", help="idempotency key of this run")
    train.add_argument("--objective", choices=("tweedie", "poisson"), default="tweedie")
    train.add_argument("--cv-folds", type=int, default=2, help="expanding-window folds before the holdout")
    train.add_argument(
        "--holdout-days", type=int, default=28, help="days per fold and in the holdout (short history: fewer)"
    )

    features = add(
        "features", cmd_features, "the feature store's batch jobs (Feast apply, export, materialize)"
    )
    features.add_argument("action", choices=["apply", "export", "materialize"])
    features.add_argument("--home", type=Path, default=None, help="state folder (default: SHOPML_HOME)")
    features.add_argument("--start", type=_day, default=None, help="first day")
    features.add_argument("--end", type=_day, default=None, help="last day, inclusive (default: today, UTC)")
    features.add_argument("--from-offline", action="store_true", help="materialize the exported parquet")

    deploy = add(
        "deploy",
        cmd_deploy,
        "put a registered model version live through the gates (card, training's promotion, ONNX "
        "parity, latency, smoke) in one atomic flip of the live pointer",
    )
    deploy.add_argument("model", help="model name, e.g. demand")
    deploy.add_argument("version", help="registered version, e.g. 1.2.0")
    deploy.add_argument("--force", action="store_true", help="skip the gates (the record says forced)")
    deploy.add_argument("--reason", default="", help="why (recorded in model_deployments)")
    deploy.add_argument("--requested-by", default=None, help="who asks (default cli:<user>)")
    deploy.add_argument(
        "--home", type=Path, default=None, help="local stack's state folder (default: SHOPML_HOME)"
    )
    deploy.add_argument("--json", action="store_true", help="also print the outcome as one JSON line")

    rollback = add(
        "rollback",
        cmd_rollback,
        "flip the live model back to the previous version (or the next older promoted one); never back "
        "to a version rolled away from",
    )
    rollback.add_argument("model", help="model name, e.g. demand")
    rollback.add_argument("--reason", required=True, help="why (recorded in model_deployments)")
    rollback.add_argument("--requested-by", default=None, help="who asks (default cli:<user>)")
    rollback.add_argument(
        "--idempotency-key", default=None, help="the same key rolls back once (default: new)"
    )
    rollback.add_argument(
        "--via-topic",
        action="store_true",
        help="publish to rollback-requests, as drift_monitor does, and wait for the flip",
    )
    rollback.add_argument("--wait", type=float, default=30.0, help="with --via-topic: seconds to wait")
    rollback.add_argument("--home", type=Path, default=None, help="local stack's state folder")
    rollback.add_argument("--json", action="store_true", help="also print the outcome as one JSON line")

    drift = add(
        "drift",
        cmd_drift,
        "compare two datasets (parquet or CSV, same columns) with the drift monitor's checks; writes "
        "DIR/drift.json and DIR/drift.html; exit 0 no drift, 1 drift, 2 bad input",
    )
    drift.add_argument("--reference", required=True, help="the reference data (e.g. training inputs)")
    drift.add_argument("--current", required=True, help="the data to check against it")
    drift.add_argument("--out", default=None, help="folder for drift.json and drift.html (default: .)")

    from devkit.store_cli import add_store_commands  # connect, backfill (light: argparse only)

    add_store_commands(add)

    simulate = add(
        "simulate", cmd_simulate, "send a simulated store's or the retail sample's signed webhooks"
    )
    simulate.add_argument(
        "rest", nargs=argparse.REMAINDER, help="arguments of the simulator (see simulate -h)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
