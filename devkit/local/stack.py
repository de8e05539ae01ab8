"""The local stack: Pub/Sub emulator + functions under functions-framework + push subscriptions.

``LocalStack(home).up()`` starts everything on free loopback ports, creates the topology from
``shared/topology.json``, waits until every part answers, and writes ``<home>/run/stack.json``
(where everything listens, and the PIDs). ``down()`` stops every process it started, including
descendants that left their group, and checks that none is left. Later steps add their
emulators and services here.

``LocalStack(home, feature_server=True)`` also runs Feast's feature server (``feast serve`` on
the generated repo under ``<home>/features/repo``) and hands the functions
``SHOPML_FEATURE_SERVER_URL``. Opt-in: it costs ~5 s of start-up (overlapped with the rest)
and ~390 MB. The registry may still be empty: the server then answers 404 for every view,
and picks up a later ``python -m shared.features apply`` within seconds.

When the stack runs a function of the live pointer (``deploy_model``, ``rollback``, ``predict``,
``drift_monitor``) it also starts the official Firestore emulator (the live pointer;
``FIRESTORE_EMULATOR_HOST`` in every child's environment and in ``stack.json``'s ``env``). It
starts first and is waited for last: its ~3-5 s of Java start-up overlap the rest.

``predict`` and ``ingest_webhook`` run the way the cloud serves them: functions-framework with
``FUNCTION_USE_ASGI=true`` (what the Terraform sets; the same switch as ``--asgi``: the app is
built by ``functions_framework.aio.create_asgi_app`` and served by gunicorn with a Uvicorn worker).
``LocalStack(home, predict_instances=2)`` starts more ``predict`` processes on the same env,
named ``predict-2``, ``predict-3``... in ``functions`` and ``pids`` (two instances following
one live pointer). Every child gets ``SHOPML_REGISTRY`` (``file://<home>/registry`` unless
``extra_env`` says otherwise) and ``SHOPML_PREDICT_KEYS``: one bearer key per local shop
(``LOCAL_SHOPS``), derived from the local webhook secret so they stay the same across restarts;
they are in the ``env`` that ``shopml stack up`` prints.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import sys
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from devkit.local.processes import (
    STACK_ID_VAR,
    ManagedProcess,
    StackError,
    feature_server_argv,
    firestore_emulator_argv,
    firestore_ready,
    free_port,
    functions_framework_argv,
    http_answers,
    pid_alive,
    start_process,
    stop_processes,
    wait_until,
)
from shared.settings import REPO_ROOT, Settings
from shared.topology import Topology, load_topology

# The local development secret. Never used outside the local stack; say so loudly in README.
LOCAL_WEBHOOK_SECRET = "shopml-local-dev-secret-not-for-production"  # noqa: S105 - local only
STATE_FILE = "stack.json"
# Functions that read or write the live pointer (Firestore): with any of them, the emulator runs.
FIRESTORE_FUNCTIONS = frozenset({"deploy_model", "rollback", "predict", "drift_monitor"})
# Functions served on functions-framework's ASGI path (``@functions_framework.aio.http``), with
# the environment the Terraform gives them.
ASGI_FUNCTIONS = frozenset({"ingest_webhook", "predict"})
ASGI_ENV = {"FUNCTION_USE_ASGI": "true"}
# The shops the local tools sell as (each gets a predict key): the simulator's default shop
# (devkit.simulator.events.DEFAULT_SHOP_DOMAIN), the demo's privacy shop (devkit/demo.py), the
# UCI retail replay (devkit.simulator.retail.RETAIL_SHOP_DOMAIN) and the importer's
# (devkit.importer.run.SHOPIFY_SHOP_DOMAIN). Literal here: importing those modules costs pandas.
LOCAL_SHOPS = (
    "shopml-demo.myshopify.com",
    "demo-store.myshopify.com",
    "uci-online-retail.myshopify.com",
    "imported-store.myshopify.com",
)


def local_predict_key(shop_domain: str, secret: str = LOCAL_WEBHOOK_SECRET) -> str:
    """The local stack's bearer key for ``shop_domain``: derived from the local secret, so the
    same across restarts (local only; the cloud's keys live in Secret Manager)."""
    digest = hmac.new(secret.encode(), b"predict-key:" + shop_domain.lower().encode(), hashlib.sha256)
    return "local-" + digest.hexdigest()[:32]


def local_predict_keys(shops: Iterable[str], secret: str = LOCAL_WEBHOOK_SECRET) -> str:
    """``SHOPML_PREDICT_KEYS`` for ``shops``: ``shop_domain=key,...``."""
    return ",".join(f"{shop.lower()}={local_predict_key(shop, secret)}" for shop in shops)


def instance_names(function: str, count: int) -> list[str]:
    """``predict``, ``predict-2``, ...: the names of ``count`` instances of one function."""
    return [function] + [f"{function}-{number}" for number in range(2, count + 1)]


@dataclass
class StackInfo:
    """Where the running stack listens, and what to stop."""

    stack_id: str
    project: str
    home: str
    pubsub_host: str
    functions: dict[str, str] = field(default_factory=dict)  # name -> base URL
    pids: dict[str, int] = field(default_factory=dict)  # part -> PID (= process group id)
    env: dict[str, str] = field(default_factory=dict)  # settings every function runs with
    startup_seconds: dict[str, float] = field(default_factory=dict)
    feature_server: str = ""  # base URL of the Feast feature server, when started
    firestore_host: str = ""  # host:port of the Firestore emulator, when started
    ready: bool = False  # every part answers and the topology exists

    def url(self, function: str) -> str:
        try:
            return self.functions[function]
        except KeyError:
            raise StackError(f"function {function!r} is not running in this stack") from None

    def settings(self) -> Settings:
        return Settings.from_env(self.env)


def _state_path(home: Path) -> Path:
    return home / "run" / STATE_FILE


def read_state(home: Path) -> StackInfo | None:
    path = _state_path(home)
    if not path.is_file():
        return None
    return StackInfo(**json.loads(path.read_text()))


class LocalStack:
    """Start and stop the embedded-default stack. Use as a context manager in tests and demos."""

    def __init__(
        self,
        home: Path | None = None,
        *,
        project: str = "shopml-local",
        topic_prefix: str = "",
        webhook_secrets: Iterable[str] = (LOCAL_WEBHOOK_SECRET,),
        functions: Iterable[str] | None = None,
        extra_env: Mapping[str, str] | None = None,
        topology: Topology | None = None,
        retry_backoff_seconds: tuple[int, int] | None = None,
        load_mode: str = "push",
        feature_server: bool = False,
        predict_instances: int = 1,
        predict_shops: Iterable[str] = LOCAL_SHOPS,
    ) -> None:
        self.home = (home or REPO_ROOT / ".shopml").resolve()
        self.project = project
        self.topic_prefix = topic_prefix
        self.webhook_secrets = tuple(webhook_secrets)
        self.topology = topology or load_topology()
        implemented = [f.name for f in self.topology.functions if f.implemented]
        self.function_names = list(functions) if functions is not None else implemented
        unknown = [name for name in self.function_names if name not in implemented]
        if unknown:
            raise StackError(f"no function folder for {unknown}; implemented: {implemented}")
        self.extra_env = dict(extra_env or {})
        self.retry_backoff_seconds = retry_backoff_seconds
        if load_mode not in ("push", "pull"):
            raise StackError(f"load_mode {load_mode!r}: choose push (validate_load) or pull (batch loader)")
        self.load_mode = load_mode
        self.feature_server = feature_server
        if load_mode == "pull" and "validate_load" in self.function_names:
            # The batching path replaces the push-triggered function on the same subscription.
            self.function_names.remove("validate_load")
        if predict_instances < 1:
            raise StackError(f"predict_instances={predict_instances}: at least 1")
        self.predict_instances = predict_instances
        self.predict_shops = tuple(predict_shops)
        self.info: StackInfo | None = None
        self._feature_started = 0.0
        self._firestore_started = 0.0

    # -- lifecycle -------------------------------------------------------------------------
    def up(self, timeout_s: float = 60.0) -> StackInfo:
        existing = read_state(self.home)
        if existing and any(pid_alive(pid) for pid in existing.pids.values()):
            raise StackError(
                f"a local stack is already running from {self.home} (pids {existing.pids}); "
                "run `python -m devkit.local down` first"
            )
        run_dir = self.home / "run"
        run_dir.mkdir(parents=True, exist_ok=True)
        stack_id = uuid.uuid4().hex
        pubsub_port = free_port()
        feature_port = free_port() if self.feature_server else None
        firestore_port = free_port() if FIRESTORE_FUNCTIONS & set(self.function_names) else None
        base_env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("PUBSUB_EMULATOR_HOST", "FIRESTORE_EMULATOR_HOST")
        }
        settings_env = {
            "GOOGLE_CLOUD_PROJECT": self.project,
            "PUBSUB_EMULATOR_HOST": f"127.0.0.1:{pubsub_port}",
            "SHOPIFY_WEBHOOK_SECRETS": ",".join(self.webhook_secrets),
            "SHOPML_HOME": str(self.home),
            "SHOPML_TOPIC_PREFIX": self.topic_prefix,
            "SHOPML_REGISTRY": f"file://{self.home / 'registry'}",
            "SHOPML_PREDICT_KEYS": local_predict_keys(self.predict_shops),
            **self.extra_env,
        }
        if feature_port is not None:
            settings_env["SHOPML_FEATURE_SERVER_URL"] = f"http://127.0.0.1:{feature_port}"
        if firestore_port is not None:
            settings_env["FIRESTORE_EMULATOR_HOST"] = f"127.0.0.1:{firestore_port}"
        info = StackInfo(
            stack_id=stack_id,
            project=self.project,
            home=str(self.home),
            pubsub_host=settings_env["PUBSUB_EMULATOR_HOST"],
            env=settings_env,
        )
        self.info = info
        child_env = {**base_env, **settings_env, STACK_ID_VAR: stack_id}
        try:
            feature_server = None
            firestore = None
            if firestore_port is not None:  # started first, waited for before the functions
                firestore = self._launch_firestore(info, child_env, firestore_port)
                self._write_state()
            if feature_port is not None:  # started first, waited for last: its ~5 s overlap the rest
                feature_server = self._launch_feature_server(info, child_env, feature_port)
                self._write_state()
            self._start_pubsub(info, child_env, pubsub_port, timeout_s)
            self._write_state()
            if firestore is not None:
                self._await_firestore(info, firestore, firestore_port or 0, timeout_s)
            for name in self.function_names:
                count = self.predict_instances if name == "predict" else 1
                for instance in instance_names(name, count):
                    self._start_function(info, child_env, name, timeout_s, instance)
                    self._write_state()
            self._create_topology(info)
            if self.load_mode == "pull":
                self._start_pull_loader(info, child_env)
                self._write_state()
            if feature_server is not None:
                self._await_feature_server(info, feature_server, feature_port or 0, timeout_s)
            info.ready = True
            self._write_state()
        except BaseException:  # Ctrl-C included: never leave half a stack running
            self.down()
            raise
        return info

    def _start_pubsub(self, info: StackInfo, env: dict[str, str], port: int, timeout_s: float) -> None:
        data_dir = self.home / "run" / "pubsub-data"
        data_dir.mkdir(parents=True, exist_ok=True)
        argv = [
            "gcloud",
            "beta",
            "emulators",
            "pubsub",
            "start",
            f"--host-port=127.0.0.1:{port}",
            f"--project={self.project}",
            f"--data-dir={data_dir}",
            "--quiet",
        ]
        gcloud_env = {
            **env,
            "CLOUDSDK_CORE_DISABLE_PROMPTS": "1",
            "CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK": "1",
        }
        started = time.monotonic()
        try:
            proc = start_process("pubsub-emulator", argv, gcloud_env, self.home / "run" / "logs", REPO_ROOT)
        except FileNotFoundError:
            raise StackError(
                "gcloud not found: install the Google Cloud CLI with the pubsub-emulator "
                "component (see README, Troubleshooting)"
            ) from None
        info.pids["pubsub-emulator"] = proc.pid
        wait_until(proc, http_answers(f"http://127.0.0.1:{port}/", b"Ok"), timeout_s, "Pub/Sub emulator")
        info.startup_seconds["pubsub-emulator"] = round(time.monotonic() - started, 3)

    def _launch_firestore(self, info: StackInfo, env: dict[str, str], port: int) -> ManagedProcess:
        gcloud_env = {
            **env,
            "CLOUDSDK_CORE_DISABLE_PROMPTS": "1",
            "CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK": "1",
        }
        self._firestore_started = time.monotonic()
        try:
            proc = start_process(
                "firestore-emulator",
                firestore_emulator_argv(port),
                gcloud_env,
                self.home / "run" / "logs",
                REPO_ROOT,
            )
        except FileNotFoundError:
            raise StackError(
                "gcloud not found: install the Google Cloud CLI with the cloud-firestore-emulator "
                "component (see README, Troubleshooting)"
            ) from None
        info.pids["firestore-emulator"] = proc.pid
        return proc

    def _await_firestore(self, info: StackInfo, proc: ManagedProcess, port: int, timeout_s: float) -> None:
        wait_until(proc, firestore_ready(port), timeout_s, "Firestore emulator")
        info.firestore_host = f"127.0.0.1:{port}"
        info.startup_seconds["firestore-emulator"] = round(time.monotonic() - self._firestore_started, 3)

    def _launch_feature_server(self, info: StackInfo, env: dict[str, str], port: int) -> ManagedProcess:
        from shared.features.store import REGISTRY_REFRESH_SECONDS, write_repo  # no Feast import

        repo = write_repo(self.home)
        argv = feature_server_argv(repo.repo_dir, port, REGISTRY_REFRESH_SECONDS)
        self._feature_started = time.monotonic()
        proc = start_process("feature-server", argv, env, self.home / "run" / "logs", REPO_ROOT)
        info.pids["feature-server"] = proc.pid
        return proc

    def _await_feature_server(
        self, info: StackInfo, proc: ManagedProcess, port: int, timeout_s: float
    ) -> None:
        url = f"http://127.0.0.1:{port}"
        # /health answers 200 once the app has loaded the registry (an empty one is fine).
        wait_until(proc, http_answers(url + "/health", b""), timeout_s, "Feast feature server")
        info.feature_server = url
        info.startup_seconds["feature-server"] = round(time.monotonic() - self._feature_started, 3)

    def _start_function(
        self, info: StackInfo, env: dict[str, str], name: str, timeout_s: float, instance: str | None = None
    ) -> None:
        """Start function ``name`` as ``instance`` (its key in ``functions`` and ``pids``)."""
        instance = instance or name
        spec = self.topology.function(name)
        port = free_port()
        argv = functions_framework_argv(spec.source, name, port)
        if name in ASGI_FUNCTIONS:
            env = {**env, **ASGI_ENV}
        started = time.monotonic()
        proc = start_process(instance, argv, env, self.home / "run" / "logs", REPO_ROOT)
        info.pids[instance] = proc.pid
        url = f"http://127.0.0.1:{port}"
        wait_until(proc, http_answers(url + "/"), timeout_s, f"function {instance}")
        info.functions[instance] = url
        info.startup_seconds[instance] = round(time.monotonic() - started, 3)

    def _start_pull_loader(self, info: StackInfo, env: dict[str, str]) -> None:
        argv = [sys.executable, "-m", "devkit.pull_loader"]
        proc = start_process("pull-loader", argv, env, self.home / "run" / "logs", REPO_ROOT)
        info.pids["pull-loader"] = proc.pid

    def _create_topology(self, info: StackInfo) -> None:
        from shared.adapters.pubsub import ensure_topology

        push_targets = {  # extra instances (``predict-2``) are HTTP-only: never a push target
            name: url
            for name, url in info.functions.items()
            if name in self.function_names and self.topology.function(name).trigger == "pubsub"
        }
        ensure_topology(
            info.settings(),
            self.topology,
            push_targets,
            retry_backoff_seconds=self.retry_backoff_seconds,
            pull_functions=frozenset({"validate_load"}) if self.load_mode == "pull" else frozenset(),
        )

    def _write_state(self) -> None:
        if self.info is None:
            raise RuntimeError("the stack has no state to write before it started")
        path = _state_path(self.home)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self.info), indent=2))
        tmp.replace(path)

    def down(self) -> list[int]:
        """Stop everything this stack started; returns PIDs that could not be stopped."""
        info = self.info or read_state(self.home)
        if info is None:
            return []
        survivors = stop_processes(info.pids.values(), info.stack_id)
        _state_path(self.home).unlink(missing_ok=True)
        self.info = None
        if survivors:
            raise StackError(f"could not stop processes {survivors}")
        return survivors

    def __enter__(self) -> StackInfo:
        return self.up()

    def __exit__(self, *exc: Any) -> None:
        self.down()
