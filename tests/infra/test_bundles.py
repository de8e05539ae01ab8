"""Function bundles built from each function's import closure (infra/scripts/bundle.py): only the
shared/ files the code imports or reads, and every entry point importable from its bundle alone."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import sysconfig
from pathlib import Path
from types import ModuleType

import pytest

from tests.infra.hcl import REPO, TOPOLOGY, function_folders

BUNDLER = REPO / "infra" / "scripts" / "bundle.py"
# Functions whose job is training: they alone may carry the trainer's code (shared/training).
# trigger_training runs the trainer; drift_monitor scores live forecasts with training's metrics and
# gate (pure numpy).
TRAINING_FUNCTIONS = {"trigger_training", "drift_monitor"}


def load_bundler() -> ModuleType:
    spec = importlib.util.spec_from_file_location("shopml_bundle", BUNDLER)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve the module's annotations through it
    spec.loader.exec_module(module)
    return module


def write_tree(root: Path, files: dict[str, str]) -> None:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def run_bundler(*args: str) -> subprocess.CompletedProcess[str]:
    # Cloud Build runs it with a bare python3: the standard library must be enough (-S: no site).
    return subprocess.run(
        [sys.executable, "-S", str(BUNDLER), *args], capture_output=True, text=True, timeout=120
    )


def test_bundle_holds_the_function_and_exactly_the_shared_files_its_imports_reach(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    write_tree(
        repo,
        {
            "functions/alpha/main.py": (
                '"""Reads shared/schemas/unused/ in a docstring only: that is not a reference."""\n'
                "from shared import settings\n"
                "from shared.adapters import pubsub\n"
                "def alpha():\n"
                "    from shared.lazy import thing  # lazy: runs too, so it ships\n"
                "    return thing\n"
            ),
            "functions/alpha/requirements.txt": "functions-framework==3.10.2\n",
            "functions/alpha/__pycache__/main.cpython-311.pyc": "x",
            "functions/notyet/README.md": "no main.py: not bundled\n",
            "shared/__init__.py": "",
            "shared/settings.py": "X = 1\n",
            "shared/adapters/__init__.py": "from . import base\n",
            "shared/adapters/base.py": "",
            "shared/adapters/pubsub.py": "from ..errors import Oops\n",
            "shared/adapters/unused.py": "import shared.training\n",
            "shared/errors.py": "class Oops(Exception): ...\n",
            "shared/lazy.py": (
                "from pathlib import Path\n"
                'TABLES = Path(__file__).parent / "schemas" / "tables"\n'
                'TOPOLOGY = Path(__file__).with_name("topology.json")\n'
                "def thing():\n"
                '    raise ValueError("not found in shared/sql/views: messages are not references")\n'
            ),
            "shared/schemas/README.md": "docs, never bundled\n",
            "shared/schemas/tables/orders.json": "{}\n",
            "shared/schemas/unused/x.json": "{}\n",
            "shared/sql/views/v.sql": "select 1\n",
            "shared/topology.json": "{}\n",
            "shared/training/__init__.py": "",
            "shared/__pycache__/settings.cpython-311.pyc": "x",
            "devkit/simulator/replay.py": "simulator\n",
            "tests/test_x.py": "",
        },
    )
    out = tmp_path / "out"
    result = run_bundler("--repo", str(repo), "--out", str(out))
    assert result.returncode == 0, result.stderr
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert files == [
        "alpha/main.py",
        "alpha/requirements.txt",
        "alpha/shared/__init__.py",
        "alpha/shared/adapters/__init__.py",
        "alpha/shared/adapters/base.py",  # through the package's __init__
        "alpha/shared/adapters/pubsub.py",
        "alpha/shared/errors.py",  # relative import
        "alpha/shared/lazy.py",  # import inside a function
        "alpha/shared/schemas/tables/orders.json",  # read by lazy.py
        "alpha/shared/settings.py",
        "alpha/shared/topology.json",  # named by lazy.py
    ]
    # Modes normalised: the zip's md5 (the object name) changes only with content.
    assert all((p.stat().st_mode & 0o777) == 0o644 for p in out.rglob("*") if p.is_file())

    # An import of a shared module that does not exist fails the bundle, naming it.
    (repo / "shared" / "settings.py").write_text("from shared.gone import x\n")
    failed = run_bundler("--repo", str(repo), "--out", str(out))
    assert failed.returncode != 0 and "shared.gone" in failed.stderr
    (repo / "shared" / "settings.py").write_text("X = 1\n")

    (repo / "functions" / "alpha" / "requirements.txt").unlink()
    failed = run_bundler("--repo", str(repo), "--out", str(out))
    assert failed.returncode != 0 and "requirements.txt" in failed.stderr


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bundles")
    result = run_bundler("--repo", str(REPO), "--out", str(out))
    assert result.returncode == 0, result.stderr
    return out


# Run in the bundle with nothing of the repository on sys.path: -S (no site, so no .pth file of
# `make install` that adds the repository root), -s, PYTHONPATH = the bundle only; the venv's
# site-packages is added explicitly and any repository path it brings is dropped again. Then the
# entry point is imported, every bundled shared module is imported, and the data the warehouse
# schema (``load_schema``) and the topology read is loaded, all from the bundle.
PROBE = """
import importlib, json, site, sys
from pathlib import Path
bundle, site_packages, repo = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
site.addsitedir(site_packages)
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != repo]
import main
names = sorted(
    ".".join(p.relative_to(bundle).with_suffix("").parts).removesuffix(".__init__")
    for p in (bundle / "shared").rglob("*.py")
)
for name in names:
    importlib.import_module(name)
report = {
    "sys_path": [str(Path(p or ".").resolve()) for p in sys.path],
    "files": {n: m.__file__ for n, m in sys.modules.items() if n.split(".")[0] in ("shared", "main")},
}
for name in names:  # the module that reads the table and view files (wherever it lives)
    load_schema = getattr(sys.modules[name], "load_schema", None)
    if callable(load_schema) and load_schema.__module__ == name:
        schema = load_schema()
        report["tables"], report["views"] = sorted(schema.tables), sorted(schema.views)
topology = importlib.import_module("shared.topology").load_topology()
report["topology"] = sorted(spec.name for spec in topology.functions)
print(json.dumps(report))
"""


@pytest.mark.parametrize("name", function_folders())
def test_each_function_imports_from_its_bundle_alone(bundles: Path, name: str) -> None:
    bundle = bundles / name
    site_packages = sysconfig.get_paths()["purelib"]
    result = subprocess.run(
        [sys.executable, "-S", "-s", "-c", PROBE, str(bundle), site_packages, str(REPO)],
        cwd=bundle,
        env={"PYTHONPATH": str(bundle), "PATH": "/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1"},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert str(REPO) not in report["sys_path"] and str(bundle) in report["sys_path"]
    # Everything of shared (and main) came from the bundle, not the repository.
    assert report["files"]["main"] == str(bundle / "main.py")
    assert report["files"]["shared"] == str(bundle / "shared" / "__init__.py")
    strays = {n: f for n, f in report["files"].items() if f and not f.startswith(f"{bundle}/")}
    assert not strays, f"imported from outside the bundle: {strays}"
    # The data the code reads is in the bundle: the same tables and views as in the repository.
    if (bundle / "shared" / "schemas" / "tables").is_dir():
        assert "tables" in report, "the bundle has table files but no module that loads them"
        assert report["tables"] == sorted(p.stem for p in (REPO / "shared/schemas/tables").glob("*.json"))
        assert report["views"] == sorted(p.stem for p in (REPO / "shared/sql/views").glob("*.sql"))
    assert report["topology"] == sorted(TOPOLOGY["functions"])


@pytest.mark.parametrize("name", function_folders())
def test_bundles_carry_no_dev_tools_tests_or_foreign_code(bundles: Path, name: str) -> None:
    files = [p.relative_to(bundles / name).as_posix() for p in (bundles / name).rglob("*") if p.is_file()]
    assert "main.py" in files and "requirements.txt" in files
    top = {path.split("/")[0] for path in files}
    assert top <= {"main.py", "requirements.txt", "shared"}, f"{name} bundles {sorted(top)}"
    forbidden = ("simulator", "devkit", "demo", "pull_loader", "shared/local/", "bench", "tests/", "conftest")
    assert not [path for path in files if any(word in path for word in forbidden)]
    assert not [path for path in files if path.endswith((".pyc", ".md"))]
    if name not in TRAINING_FUNCTIONS:
        assert not [path for path in files if path.startswith("shared/training/")], name
    # A closure, not a copy: shared modules no import reaches stay out.
    repo_shared = {p.relative_to(REPO).as_posix() for p in (REPO / "shared").rglob("*.py")}
    assert {path for path in files if path.endswith(".py") and path != "main.py"} < repo_shared


def test_closure_follows_lazy_imports_and_package_inits() -> None:
    bundler = load_bundler()
    found = bundler.closure(REPO, REPO / "functions" / "validate_load" / "main.py")
    # validate_load imports shared.features.push inside a function (only with a feature server).
    assert "shared.features.push" in found.modules
    assert "shared.features" in found.modules  # its package __init__ runs first
    assert Path("shared/features/__init__.py") in found.files
    assert not found.unresolved
