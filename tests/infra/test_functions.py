"""Cloud Functions: runtime, sizing, settings, content-hashed sources and the bundles they come from."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.infra.hcl import REPO, compact, locals_of, module_dir, named_blocks, resource, resources, single


def test_functions_run_python311_with_topology_sizing_and_cloud_settings() -> None:
    functions = module_dir("functions")
    function = resource(functions, "google_cloudfunctions2_function", "this")
    build = single(function, "build_config")
    assert build["runtime"] == "var.runtime" and build["entry_point"] == "each.key"
    assert named_blocks(functions, "variable")["runtime"]["default"] == "python311"
    service = single(function, "service_config")
    expected = {
        "available_memory": "each.value.memory",
        "available_cpu": "each.value.cpu",
        "timeout_seconds": "each.value.timeout_seconds",
        "min_instance_count": "each.value.min_instances",
        "max_instance_count": "each.value.max_instances",
        "max_instance_request_concurrency": "each.value.concurrency",
        "environment_variables": (
            "merge(local.runtime_environment,lookup(var.function_environment_variables,each.key,{}))"
        ),
    }
    assert {key: compact(service[key]) for key in expected} == expected
    env = compact(locals_of(functions)["runtime_environment"])
    assert "GOOGLE_CLOUD_PROJECT=var.project_id" in env
    assert 'SHOPML_WAREHOUSE="bigquery://${var.project_id}/${var.warehouse_dataset}"' in env
    assert 'SHOPML_TOPIC_PREFIX=""' in env


def test_function_source_is_named_by_content_hash() -> None:
    functions = module_dir("functions")
    archive = next(
        body for t, n, body in resources(functions, "data") if (t, n) == ("archive_file", "source")
    )
    assert archive["source_dir"] == "${var.bundle_dir}/${each.key}"
    obj = resource(functions, "google_storage_bucket_object", "source")
    assert obj["name"] == "${each.key}/${data.archive_file.source[each.key].output_md5}.zip"
    source = single(
        single(
            single(resource(functions, "google_cloudfunctions2_function", "this"), "build_config"), "source"
        ),
        "storage_source",
    )
    assert compact(source["object"]) == "google_storage_bucket_object.source[each.key].name"


BUNDLE_SCRIPT = REPO / "infra" / "scripts" / "bundle_functions.sh"


def test_bundle_holds_the_function_and_shared_without_local_code(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    for relative, text in {
        "functions/alpha/main.py": "def alpha(): ...\n",
        "functions/alpha/requirements.txt": "functions-framework==3.10.2\n",
        "functions/alpha/__pycache__/main.cpython-311.pyc": "x",
        "functions/notyet/README.md": "no main.py: not bundled\n",
        "shared/__init__.py": "",
        "shared/settings.py": "X = 1\n",
        "shared/topology.json": "{}\n",
        "shared/adapters/pubsub.py": "\n",
        "devkit/local/__main__.py": "local stack\n",
        "devkit/simulator/replay.py": "simulator\n",
        "shared/__pycache__/settings.cpython-311.pyc": "x",
    }.items():
        path = repo / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    out = tmp_path / "out"
    result = subprocess.run(
        ["bash", str(BUNDLE_SCRIPT), str(repo), str(out)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert files == [
        "alpha/main.py",
        "alpha/requirements.txt",
        "alpha/shared/__init__.py",
        "alpha/shared/adapters/pubsub.py",
        "alpha/shared/settings.py",
        "alpha/shared/topology.json",
    ]
    assert all((p.stat().st_mode & 0o777) == 0o644 for p in out.rglob("*") if p.is_file())

    (repo / "functions" / "alpha" / "requirements.txt").unlink()
    failed = subprocess.run(
        ["bash", str(BUNDLE_SCRIPT), str(repo), str(out)], capture_output=True, text=True, timeout=60
    )
    assert failed.returncode != 0 and "requirements.txt" in failed.stderr
