"""Entrypoint of the feature server image: write ``feature_store.yaml``, then exec the command.

The configuration is the committed template ``shared/features/feast_repo/feature_store.cloud.yaml``
(copied into the image). Its ``${VAR}`` references stay as they are: Feast expands them from the
environment when it loads the file (``os.path.expandvars`` in ``feast.repo_config``), so the
Redis AUTH string (``SHOPML_REDIS_AUTH``, from Secret Manager) never lands on disk. This script:

* fails fast, naming the variable, when one the template needs is unset (Feast would otherwise
  keep the literal ``${VAR}`` and fail later with an unrelated error);
* writes the Memorystore server CA(s) from ``SHOPML_REDIS_CA_CERTS`` (public certificates; the
  instance's ``server_ca_certs``) to a file and adds ``ssl_ca_certs=<file>`` to the Redis
  connection string, so redis-py verifies the TLS certificate of the instance;
* appends ``SHOPML_REDIS_EXTRA_PARAMS`` (``k=v,k=v``, e.g. ``socket_timeout=1``) if set;
* changes to the repo directory and execs its arguments (``feast serve ...``) with
  ``SHOPML_FEAST_REPO=<repo directory>`` added to their environment: that is what makes the
  nightly job's ``python -m shared.features materialize`` run in cloud mode on this very config
  (BigQuery query source, Redis, GCS registry) instead of writing a local one (``feast serve``
  ignores the variable).

Standard library and PyYAML (a Feast dependency) only; it runs before every start, in ~0.1 s.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import yaml

TEMPLATE = Path(os.environ.get("SHOPML_FEAST_TEMPLATE", "/app/feast_repo/feature_store.cloud.yaml"))
REPO_DIR = Path(os.environ.get("SHOPML_FEAST_REPO_DIR", str(Path.home() / "feast_repo")))
CA_FILE = "redis-server-ca.pem"


def referenced_variables(text: str) -> list[str]:
    """``${VAR}`` names used outside comments, in order of first use."""
    names: list[str] = []
    for line in text.splitlines():
        code = line.split("#", 1)[0]
        for name in re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", code):
            if name not in names:
                names.append(name)
    return names


def render(template: str, env: dict[str, str], repo_dir: Path) -> str:
    """The feature_store.yaml to write (``${VAR}`` kept for Feast to expand)."""
    missing = [name for name in referenced_variables(template) if not env.get(name)]
    if missing:
        raise SystemExit(
            f"feature server: {', '.join(missing)} not set; the Cloud Run service "
            "(infra/modules/features) sets them"
        )
    config = yaml.safe_load(template)
    online = config["online_store"]
    params: list[str] = []
    ca_certs = env.get("SHOPML_REDIS_CA_CERTS", "").strip()
    if ca_certs:
        ca_path = repo_dir / CA_FILE
        ca_path.write_text(ca_certs + "\n")
        params.append(f"ssl_ca_certs={ca_path}")
    extra = env.get("SHOPML_REDIS_EXTRA_PARAMS", "").strip().strip(",")
    if extra:
        params.append(extra)
    if params:
        online["connection_string"] = ",".join([online["connection_string"], *params])
    header = (
        f"# Written by infra/feature_server/entrypoint.py from {TEMPLATE.name}; Feast expands ${{VAR}}.\n"
    )
    return header + yaml.safe_dump(config, sort_keys=False)


def child_environment(environ: dict[str, str], repo_dir: Path) -> dict[str, str]:
    """The command's environment: this one plus ``SHOPML_FEAST_REPO`` (shared.settings)."""
    return {**environ, "SHOPML_FEAST_REPO": str(repo_dir)}


def main(argv: list[str]) -> None:
    if not argv:
        raise SystemExit("usage: entrypoint.py COMMAND [ARGS...] (e.g. feast serve -h 0.0.0.0 -p 8080)")
    REPO_DIR.mkdir(parents=True, exist_ok=True)
    text = render(TEMPLATE.read_text(), dict(os.environ), REPO_DIR)
    (REPO_DIR / "feature_store.yaml").write_text(text)
    os.chdir(REPO_DIR)
    # Replacing this process by the server (or the batch command) is the point.
    os.execvpe(argv[0], argv, child_environment(dict(os.environ), REPO_DIR))  # noqa: S606


if __name__ == "__main__":
    main(sys.argv[1:])
