"""The warehouse: tables from the schema files the code reads, dataset-level grants."""

from __future__ import annotations

from tests.infra.hcl import (
    REPO,
    TOPOLOGY,
    compact,
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
    # No project-wide BigQuery role but the trainer's jobUser (a query is a project-level job;
    # what it may read is the dataset grant).
    assert [
        (d.name, n, body["role"])
        for d, t, n, body in iam_resources()
        if t.startswith("google_project_iam") and str(body.get("role", "")).startswith("roles/bigquery")
    ] == [("vertex", "trainer_runs_queries", "roles/bigquery.jobUser")]
    # The webhook path never touches the warehouse.
    assert "warehouse" not in TOPOLOGY["functions"]["ingest_webhook"]
    assert TOPOLOGY["functions"]["validate_load"]["warehouse"] == "write"
