"""``python -m bench [--quick] [--only NAME]``: run the benchmarks, write bench/out/<name>.json."""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import time
from pathlib import Path

OUT = Path(__file__).resolve().parent / "out"
BENCHMARKS = [
    "ingest", "validation", "warehouse", "pipeline", "training", "import", "predict", "serving", "drift",
    "backfill",
]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--quick", action="store_true", help="short runs, one repeat")
    parser.add_argument("--only", choices=BENCHMARKS, action="append")
    args = parser.parse_args()
    OUT.mkdir(exist_ok=True)
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    for name in args.only or BENCHMARKS:
        module = __import__(f"bench.{name}_bench", fromlist=["run", "report"])
        started = time.time()
        results = module.run(quick=args.quick)
        results["meta"] = {
            "benchmark": name,
            "quick": args.quick,
            "commit": commit,
            "machine": f"{platform.machine()} {__import__('os').cpu_count()} cores",
            "seconds": round(time.time() - started, 1),
            "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        (OUT / f"{name}.json").write_text(json.dumps(results, indent=2, default=str))
        print(f"== {name} ({results['meta']['seconds']} s)")
        print(module.report(results))


if __name__ == "__main__":
    main()
