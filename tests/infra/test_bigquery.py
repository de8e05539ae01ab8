"""The warehouse: tables from the schema files the code reads, dataset-level grants, jobUser for queries."""

from __future__ import annotations

import ast
import importlib.util
import re
import sys
from types import ModuleType

from tests.infra.hcl import (
    REPO,
    TOPOLOGY,
    compact,
    function_folders,
    iam_resources,
    locals_of,
    module_dir,
    named_blocks,
    resource,
)


def test_bigquery_tables_come_from_the_schema_files_the_code_reads() -> None:
    root_locals = locals_of(REPO)
    tables_expr = compact(root_locals["warehouse_tables"])
    assert 'fileset("${path.module}/shared/schemas/tables","*.json")' in tables_expr
    assert "jsondecode(file(" in tables_expr
    table = resource(module_dir("bigquery"), "google_bigquery_table", "this")
    assert table["for_each"] == "var.tables"
    assert compact(table["schema"]) == "jsonencode(each.value.schema)"
    assert "time_partitioning" in table["dynamic"][0]
    call = named_blocks(REPO, "module")["bigquery"]
    assert "local.warehouse_tables" in compact(call["tables"])
    assert (REPO / "shared" / "schemas" / "tables" / "raw_events.json").is_file()


def test_bigquery_access_is_granted_on_the_dataset_from_topology() -> None:
    bigquery = module_dir("bigquery")
    writer = resource(bigquery, "google_bigquery_dataset_iam_member", "writer")
    reader = resource(bigquery, "google_bigquery_dataset_iam_member", "reader")
    assert (writer["role"], reader["role"]) == ("roles/bigquery.dataEditor", "roles/bigquery.dataViewer")
    access_expr = compact(locals_of(REPO)["warehouse_access"])
    assert "local.topology.functions[name].warehouse" in access_expr
    call = named_blocks(REPO, "module")["bigquery"]
    assert 'access=="write"' in compact(call["writers"]) and 'access=="read"' in compact(call["readers"])
    # No project-wide BigQuery role but jobUser, for the trainer and the functions that query (a
    # query is a project-level job; what it may read is the dataset grant).
    assert sorted(
        (d.name, n, body["role"])
        for d, t, n, body in iam_resources()
        if t.startswith("google_project_iam") and str(body.get("role", "")).startswith("roles/bigquery")
    ) == [
        ("bigquery", "job_user", "roles/bigquery.jobUser"),
        ("vertex", "trainer_runs_queries", "roles/bigquery.jobUser"),
    ]
    # The webhook path never touches the warehouse.
    assert "warehouse" not in TOPOLOGY["functions"]["ingest_webhook"]
    assert TOPOLOGY["functions"]["validate_load"]["warehouse"] == "write"


def load_bundler() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "shopml_bundle_bq", REPO / "infra" / "scripts" / "bundle.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def functions_that_query() -> set[str]:
    """Implemented functions whose code (import closure, lazy imports included; the adapters that
    implement ``query`` left out) calls ``.query(...)`` or ``.query_frame(...)``: BigQuery jobs."""
    bundler = load_bundler()
    found = set()
    for name in function_folders():
        closure = bundler.closure(REPO, REPO / "functions" / name / "main.py")
        for module in closure.modules - {m for m in closure.modules if m.startswith("shared.adapters")}:
            tree = ast.parse(bundler.module_path(REPO, module).read_text())
            if any(
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in {"query", "query_frame"}
                for node in ast.walk(tree)
            ):
                found.add(name)
    return found


def test_functions_that_run_queries_hold_job_user_on_the_project_and_data_access_on_the_dataset() -> None:
    querying = functions_that_query()
    # validate_load's feature push reads the stored state of the changed variants.
    assert "validate_load" in querying
    job_users = compact(locals_of(REPO)["bigquery_job_users"])
    listed = set(re.findall(r'"([a-z_]+)"', job_users))
    assert querying <= listed, f"{sorted(querying - listed)} run queries without roles/bigquery.jobUser"
    assert job_users.endswith("nameifcontains(keys(local.functions),name)]")  # deployed ones only
    call = named_blocks(REPO, "module")["bigquery"]
    # The functions that query, and the nightly materialization job (it builds the feature table).
    assert compact(call["job_users"]) == (
        "merge({fornameinlocal.bigquery_job_users:name=>module.iam.function_members[name]},"
        "{shopml_materialize=module.features.materializer_member})"
    )
    grant = resource(module_dir("bigquery"), "google_project_iam_member", "job_user")
    assert (grant["role"], grant["for_each"], grant["member"]) == (
        "roles/bigquery.jobUser",
        "var.job_users",
        "each.value",
    )
    # The data a query may touch stays dataset-scoped: each job user has a dataset grant too.
    for name in listed:
        assert TOPOLOGY["functions"][name].get("warehouse") in {"read", "write"}, name
    variable = named_blocks(module_dir("bigquery"), "variable")["job_users"]
    assert "^serviceAccount:" in variable["validation"][0]["condition"]
