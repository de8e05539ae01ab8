"""IAM: no basic roles, project-level grants only where unavoidable, one account per function, secrets."""

from __future__ import annotations

from tests.infra.hcl import (
    ALLOWED_PROJECT_GRANTS,
    ALLOWED_PROJECT_ROLES,
    REPO,
    Expr,
    compact,
    iam_resources,
    locals_of,
    module_dir,
    named_blocks,
    preceding_comment,
    resource,
    single,
)


def test_no_owner_or_editor_and_project_roles_only_where_unavoidable() -> None:
    grants = iam_resources()
    assert len(grants) >= 8, (
        "expected the resource-level grants of the iam, pubsub, functions and secrets modules"
    )
    for directory, rtype, name, body in grants:
        where = f"{directory.relative_to(REPO) or '.'}: {rtype}.{name}"
        role = body.get("role", "")
        assert role not in {"roles/owner", "roles/editor"}, f"{where} grants {role}"
        assert not rtype.endswith("_policy"), (
            f"{where}: authoritative IAM policies would wipe Google's own grants"
        )
        if rtype.startswith("google_project_iam"):
            assert rtype == "google_project_iam_member", (
                f"{where}: project bindings are authoritative for the role"
            )
            assert ALLOWED_PROJECT_GRANTS.get((directory.name, name)) == role, (
                f"{where}: project-wide {role}; grant it on the resource instead"
            )
            assert role in ALLOWED_PROJECT_ROLES
            assert isinstance(role, str) and not isinstance(role, Expr), (
                f"{where}: project role must be a literal"
            )
    # The only IAM member ever given to anyone outside the project is allUsers -> run.invoker.
    for _, rtype, name, body in grants:
        if str(body.get("member", "")) in {"allUsers", "allAuthenticatedUsers"}:
            assert (rtype, body["role"]) == ("google_cloud_run_v2_service_iam_member", "roles/run.invoker"), (
                name
            )
            assert body["for_each"] == "local.public_functions"


def test_one_service_account_per_function() -> None:
    account = resource(module_dir("iam"), "google_service_account", "function")
    assert account["for_each"] == "var.function_names"
    assert compact(named_blocks(REPO, "module")["iam"]["function_names"]) == "toset(keys(local.functions))"
    function = resource(module_dir("functions"), "google_cloudfunctions2_function", "this")
    service = single(function, "service_config")
    assert compact(service["service_account_email"]) == "var.service_account_emails[each.key]"


def test_event_functions_are_internal_and_invoked_only_by_the_push_account() -> None:
    functions = module_dir("functions")
    function = resource(functions, "google_cloudfunctions2_function", "this")
    assert function["for_each"] == "var.functions"
    assert "event_trigger" not in function, (
        "push subscriptions are ours; an Eventarc trigger would add its own"
    )
    service = single(function, "service_config")
    assert compact(service["ingress_settings"]) == compact(
        'each.value.public ? "ALLOW_ALL" : "ALLOW_INTERNAL_ONLY"'
    )
    assert "each.value.public_reason" in function["description"]
    local = locals_of(functions)
    assert 'fn.trigger=="pubsub"' in compact(local["pubsub_functions"])
    assert "iffn.public" in compact(local["public_functions"])
    invoker = resource(functions, "google_cloud_run_v2_service_iam_member", "push_invoker")
    assert invoker["for_each"] == "local.pubsub_functions"
    assert invoker["role"] == "roles/run.invoker"
    assert compact(invoker["member"]) == "serviceAccount:${var.invoker_service_account_email}"
    public = resource(functions, "google_cloud_run_v2_service_iam_member", "public_invoker")
    assert (public["for_each"], public["member"]) == ("local.public_functions", "allUsers")
    root_call = named_blocks(REPO, "module")["functions"]
    assert compact(root_call["invoker_service_account_email"]) == "module.iam.push_invoker_email"
    assert (
        compact(named_blocks(REPO, "module")["pubsub"]["push_service_account_email"])
        == "module.iam.push_invoker_email"
    )


def test_each_secret_is_readable_only_by_the_functions_that_need_it() -> None:
    accessors = [r for r in iam_resources() if r[1] == "google_secret_manager_secret_iam_member"]
    # The secrets module's one (for_each) grant, and the feature server's Redis AUTH (checked in
    # test_redis_requires_auth_and_tls_and_its_secret_is_the_servers_only).
    assert sorted((d.name, n) for d, _, n, _ in accessors) == [
        ("features", "materializer_reads_redis_auth"),  # the nightly job writes to Redis
        ("features", "server_reads_redis_auth"),
        ("secrets", "accessor"),
        ("storesync", "token_reader"),  # each shop's Admin API token, reconcile only (test_storesync)
    ]
    _, _, _, grant = next(r for r in accessors if r[0].name == "secrets")
    assert grant["role"] == "roles/secretmanager.secretAccessor"
    root = locals_of(REPO)
    # predict verifies app-proxy signatures with the same Shopify app secrets.
    assert root["webhook_secret_readers"] == ["ingest_webhook", "predict"]
    assert root["pii_key_readers"] == ["validate_load", "compliance"]
    assert root["predict_keys_readers"] == ["predict"]
    assert root["slack_secret_readers"] == ["drift_monitor"]
    secrets_call = named_blocks(REPO, "module")["secrets"]
    specs = dict(secrets_call["secrets"].items())
    assert len(specs) == 4
    by_id = {key.split(".")[1].split("_secret_id")[0].split("_key")[0]: spec for key, spec in specs.items()}
    assert set(by_id) == {"webhook", "pii", "predict", "slack"}, sorted(specs)
    assert compact(by_id["slack"]["accessors"]).startswith(
        "{fornameinlocal.slack_secret_readers:name=>module.iam.function_members[name]"
    )
    assert compact(by_id["predict"]["accessors"]).startswith(
        "{fornameinlocal.predict_keys_readers:name=>module.iam.function_members[name]"
    )
    assert compact(by_id["webhook"]["accessors"]).startswith(
        "{fornameinlocal.webhook_secret_readers:name=>module.iam.function_members[name]"
    )
    assert compact(by_id["pii"]["accessors"]).startswith(
        "{fornameinlocal.pii_key_readers:name=>module.iam.function_members[name]"
    )
    env_expr = compact(root["function_secret_env"])
    assert (
        "contains(local.webhook_secret_readers,name)?{SHOPIFY_WEBHOOK_SECRETS=local.webhook_secret_id}"
        in env_expr
    )
    assert "SHOPML_PII_HASH_KEY=local.pii_key_secret_id" in env_expr
    assert (
        "contains(local.predict_keys_readers,name)?{SHOPML_PREDICT_KEYS=local.predict_keys_secret_id}"
        in env_expr
    )
    # Slack only once the secret has a version (Cloud Run cannot start on a secret without one).
    assert (
        "contains(local.slack_secret_readers,name)&&local.slack_alerts?"
        "{SHOPML_SLACK_WEBHOOK_URL=local.slack_secret_id}" in env_expr
    )
    # Exposed to the function as SHOPIFY_WEBHOOK_SECRETS, resolved from Secret Manager.
    secret_env = named_blocks(REPO, "module")["functions"]["secret_environment_variables"]
    assert "local.function_secret_env" in secret_env and "module.secrets.secret_ids[secret]" in secret_env
    service = single(
        resource(module_dir("functions"), "google_cloudfunctions2_function", "this"), "service_config"
    )
    dynamic = service["dynamic"][0]["secret_environment_variables"]
    assert compact(dynamic["for_each"]) == "lookup(var.secret_environment_variables,each.key,{})"
    # Automatic replication; no plaintext secret value ever in the configuration or state.
    secret = resource(module_dir("secrets"), "google_secret_manager_secret", "this")
    assert "auto" in single(secret, "replication")
    version = resource(module_dir("secrets"), "google_secret_manager_secret_version", "write_only")
    assert "secret_data" not in version and "secret_data_wo" in version
    values = named_blocks(module_dir("secrets"), "variable")["secret_values_wo"]
    assert values.get("ephemeral") is True and values.get("sensitive") is True
    root_value = named_blocks(REPO, "variable")["webhook_secrets"]
    assert root_value.get("ephemeral") is True and root_value.get("default") is None


def test_every_project_level_grant_says_why_it_is_unavoidable() -> None:
    found = {
        (d.name if d != REPO else ".", n)
        for d, t, n, _ in iam_resources()
        if t.startswith("google_project_iam")
    }
    assert found == set(ALLOWED_PROJECT_GRANTS)
    for module, name in ALLOWED_PROJECT_GRANTS:
        comment = preceding_comment(
            module_dir(module) / "main.tf", f'resource "google_project_iam_member" "{name}"'
        )
        assert "unavoidable" in comment.lower(), f"{module}: {name} does not say why it is project-wide"
