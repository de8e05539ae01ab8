"""Cloud Functions: runtime, sizing, settings and content-hashed sources (bundles: test_bundles.py)."""

from __future__ import annotations

from tests.infra.hcl import compact, locals_of, module_dir, named_blocks, resource, resources, single


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
            "merge(local.runtime_environment,lookup(local.asgi_environment,each.key,{}),"
            "lookup(var.function_environment_variables,each.key,{}))"
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
