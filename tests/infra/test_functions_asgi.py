"""Which functions run on functions-framework's ASGI path: Terraform (FUNCTION_USE_ASGI from the
deployed main.py) and the local stack (devkit ASGI_FUNCTIONS) both follow the code."""

from __future__ import annotations

import ast
import functools
import json
import subprocess
import tempfile
from pathlib import Path

from devkit.local.stack import ASGI_ENV, ASGI_FUNCTIONS
from tests.infra.hcl import REPO, compact, locals_of, module_dir, resource, single, terraform_binary

ASYNC_DECORATORS = {"functions_framework.aio.http", "functions_framework.aio.cloud_event"}


def async_entry_points(functions_dir: Path) -> set[str]:
    """Folders whose main.py defines its entry point (the folder's name) with an @aio decorator."""
    found = set()
    for main in functions_dir.glob("*/main.py"):
        tree = ast.parse(main.read_text())
        for node in tree.body:
            if (
                isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
                and node.name == main.parent.name
                and any(ast.unparse(d) in ASYNC_DECORATORS for d in node.decorator_list)
            ):
                found.add(main.parent.name)
    return found


def terraform_asgi_environment(bundle_dir: Path, functions: list[str]) -> dict[str, dict[str, str]]:
    """The functions module's ``asgi_environment`` as terraform computes it, for these bundles."""
    expression = locals_of(module_dir("functions"))["asgi_environment"]
    config = f"""
variable "functions" {{
  type = map(any)
}}
variable "bundle_dir" {{
  type = string
}}
locals {{
  asgi_environment = {expression}
}}
"""
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "main.tf").write_text(config)
        run = functools.partial(subprocess.run, cwd=tmp, capture_output=True, text=True, timeout=120)
        init = run([terraform_binary(), "init", "-input=false", "-backend=false"])
        assert init.returncode == 0, init.stdout + init.stderr
        console = run(
            [
                terraform_binary(),
                "console",
                f"-var=functions={json.dumps({name: {} for name in functions})}",
                f"-var=bundle_dir={bundle_dir}",
            ],
            input="jsonencode(local.asgi_environment)\n",
        )
        assert console.returncode == 0, console.stdout + console.stderr
    result: dict[str, dict[str, str]] = json.loads(json.loads(console.stdout.strip()))
    return result


def test_terraform_sets_function_use_asgi_for_exactly_the_async_entry_points() -> None:
    functions = sorted(p.parent.name for p in (REPO / "functions").glob("*/main.py"))
    expected = async_entry_points(REPO / "functions")
    assert {"ingest_webhook", "predict"} <= expected
    got = terraform_asgi_environment(REPO / "functions", functions)
    assert got == {name: {"FUNCTION_USE_ASGI": "true"} for name in expected}


def test_a_docstring_naming_the_decorator_does_not_make_a_function_async(tmp_path: Path) -> None:
    (tmp_path / "alpha").mkdir()
    (tmp_path / "alpha" / "main.py").write_text(
        "import functions_framework.aio\n\n"
        "@functions_framework.aio.http\nasync def alpha(request):\n    ...\n"
    )
    (tmp_path / "beta").mkdir()
    (tmp_path / "beta" / "main.py").write_text(
        '"""Not (yet) on ``@functions_framework.aio.http``."""\nimport functions_framework\n\n'
        "@functions_framework.http\ndef beta(request):\n    ...\n"
    )
    got = terraform_asgi_environment(tmp_path, ["alpha", "beta", "gamma"])  # gamma: no bundle
    assert got == {"alpha": {"FUNCTION_USE_ASGI": "true"}}
    assert async_entry_points(tmp_path) == {"alpha"}


def test_the_module_gives_it_under_the_functions_own_settings() -> None:
    service = single(
        resource(module_dir("functions"), "google_cloudfunctions2_function", "this"), "service_config"
    )
    assert compact(service["environment_variables"]) == (
        "merge(local.runtime_environment,lookup(local.asgi_environment,each.key,{}),"
        "lookup(var.function_environment_variables,each.key,{}))"
    )


def test_the_local_stack_serves_the_same_functions_the_same_way() -> None:
    assert async_entry_points(REPO / "functions") == ASGI_FUNCTIONS
    assert ASGI_ENV == {"FUNCTION_USE_ASGI": "true"}
