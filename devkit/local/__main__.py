"""``shopml stack up|down|status`` (also ``python -m devkit.local``): the local stack."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path

from devkit.local.processes import StackError, pid_alive
from devkit.local.stack import LocalStack, read_state
from shared.settings import get_settings


def run_stack_command(
    action: str,
    home: Path,
    foreground: bool = False,
    feature_server: bool = False,
    predict_instances: int = 1,
) -> int:
    """``up`` prints ``{"functions": {name: url}, "env": {...}}`` then an ``export`` line (other
    tools read that JSON); ``down`` stops everything; ``status`` exits 1 when a part is down."""
    stack = LocalStack(home, feature_server=feature_server, predict_instances=predict_instances)
    try:
        if action == "up":
            info = stack.up()
            print(json.dumps({"functions": info.functions, "env": info.env}, indent=2))
            print("export " + " ".join(f"{k}={v}" for k, v in info.env.items() if v))
            if foreground:
                signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
                try:
                    while all(pid_alive(pid) for pid in info.pids.values()):
                        time.sleep(0.5)
                    print("a part of the stack exited; stopping the rest", file=sys.stderr)
                except KeyboardInterrupt:
                    pass
                finally:
                    stack.down()
                    print("stack stopped")
        elif action == "down":
            stack.down()
            print("stack stopped")
        else:
            state = read_state(home)
            if state is None:
                print("no local stack running")
                return 1
            alive = {name: pid_alive(pid) for name, pid in state.pids.items()}
            print(json.dumps({"functions": state.functions, "alive": alive}, indent=2))
            return 0 if all(alive.values()) else 1
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # during start-up: up() has already stopped what it started
        stack.down()
        print("interrupted; stack stopped")
        return 130
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devkit.local", description=__doc__)
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument(
        "--home", type=Path, default=None, help="state folder (default: SHOPML_HOME or .shopml)"
    )
    parser.add_argument(
        "--foreground", action="store_true", help="with up: stay attached; Ctrl-C stops the stack"
    )
    parser.add_argument(
        "--feature-server",
        action="store_true",
        help="with up: also run the Feast feature server (~5 s, ~390 MB) and point the functions at it",
    )
    args = parser.parse_args(argv)
    return run_stack_command(
        args.command, args.home or get_settings().home, args.foreground, args.feature_server
    )


if __name__ == "__main__":
    sys.exit(main())
