"""The root configuration: derived from shared/topology.json, labelled, pinned, typed, keyed by for_each."""

from __future__ import annotations

import re
from pathlib import Path

from tests.infra.hcl import (
    CONFIG_DIRS,
    LABELLED_TYPES,
    MODULES,
    REPO,
    TOPOLOGY,
    all_resources,
    blocks,
    compact,
    function_folders,
    locals_of,
    module_dir,
    named_blocks,
    resources,
)


def test_root_reads_shared_topology_json() -> None:
    topology = locals_of(REPO)["topology"]
    assert compact(topology) == compact('jsondecode(file("${path.module}/shared/topology.json"))')
    calls = named_blocks(REPO, "module")
    assert calls["pubsub"]["topics"] == "local.topology.topics"
    assert compact(calls["pubsub"]["dead_letter_topics"]) == "local.dead_letter_topics"
    assert "local.topology.subscriptions" in locals_of(REPO)["subscriptions"]
    assert "local.topology.subscriptions" in locals_of(REPO)["dead_letter_topics"]
    assert calls["functions"]["functions"] == "local.functions"
    # Functions deploy once functions/<name>/main.py exists, with every setting from the file.
    implemented = compact(locals_of(REPO)["implemented_functions"])
    assert 'fileexists("${path.module}/functions/${name}/main.py")' in implemented
    functions = locals_of(REPO)["functions"]
    for setting in ("trigger", "public", "publishes", "memory", "cpu", "timeout_seconds", "concurrency"):
        assert f"local.topology.functions[name].{setting}" in functions, setting


def test_every_function_folder_is_in_topology() -> None:
    folders = function_folders()
    assert folders, "no function folders under functions/"
    unknown = sorted(set(folders) - set(TOPOLOGY["functions"]))
    assert not unknown, f"functions/ holds folders that shared/topology.json does not list: {unknown}"


def test_every_implemented_function_can_be_bundled() -> None:
    implemented = [
        name for name in TOPOLOGY["functions"] if (REPO / "functions" / name / "main.py").is_file()
    ]
    assert implemented, "no function is implemented yet"
    missing = [name for name in implemented if not (REPO / "functions" / name / "requirements.txt").is_file()]
    assert not missing, (
        f"Cloud Functions installs from functions/<name>/requirements.txt; missing for {missing}"
    )


def test_topology_public_functions_are_http_and_say_why() -> None:
    for name, spec in TOPOLOGY["functions"].items():
        if spec.get("public"):
            assert spec["trigger"] == "http", f"{name} is public but not an HTTP function"
            assert len(spec.get("public_reason", "").split()) >= 5, (
                f"{name} is public without a public_reason"
            )


def test_everything_is_labelled() -> None:
    labelled = [(d, t, n, b) for d, t, n, b in all_resources() if t in LABELLED_TYPES]
    assert len(labelled) >= 6
    for directory, rtype, name, body in labelled:
        assert "labels" in body, f"{directory.relative_to(REPO) or '.'}: {rtype}.{name} has no labels"
    labels = compact(locals_of(REPO)["labels"])
    assert 'app="shopml"' in labels and "environment=var.environment" in labels
    for call in named_blocks(REPO, "module").values():
        if "labels" in call:
            assert call["labels"] == "local.labels"


def required_providers(directory: Path) -> dict[str, dict[str, str]]:
    found: dict[str, dict[str, str]] = {}
    for _, block in blocks(directory, "terraform"):
        for providers in block.get("required_providers", []):
            found.update(providers)
    return found


def test_provider_versions_are_pinned_exactly_and_agree() -> None:
    root = required_providers(REPO)
    assert {"google", "archive"} <= set(root)
    for directory in CONFIG_DIRS:
        assert (directory / "versions.tf").is_file(), f"{directory} has no versions.tf"
        providers = required_providers(directory)
        assert providers, f"{directory} pins no providers"
        for name, spec in providers.items():
            assert re.fullmatch(r"\d+\.\d+\.\d+", spec["version"]), (
                f"{directory}: {name} {spec['version']!r} is not exact"
            )
            assert spec["source"] == f"hashicorp/{name}"
            assert spec == root[name], (
                f"{directory}: {name} pinned to {spec['version']}, root to {root[name]['version']}"
            )
        if directory != REPO:
            assert not list(blocks(directory, "provider")), (
                f"{directory}: modules must not configure providers"
            )


def test_every_variable_has_type_and_description() -> None:
    count = 0
    for directory in CONFIG_DIRS:
        for name, body in named_blocks(directory, "variable").items():
            count += 1
            where = f"{directory.relative_to(REPO) or '.'}: variable {name}"
            assert body.get("type"), f"{where} has no type"
            assert len(str(body.get("description", "")).split()) >= 3, f"{where} has no real description"
    assert count >= 30


def test_every_output_is_described_and_modules_have_the_standard_files() -> None:
    for name in MODULES:
        for file in ("main.tf", "variables.tf", "outputs.tf", "versions.tf"):
            assert (module_dir(name) / file).is_file(), f"infra/modules/{name}/{file} missing"
    for directory in CONFIG_DIRS:
        for name, body in named_blocks(directory, "output").items():
            assert body.get("description"), f"{directory}: output {name} has no description"
    calls = named_blocks(REPO, "module")
    assert {call["source"] for call in calls.values()} == {f"./infra/modules/{name}" for name in MODULES}


def test_collections_use_for_each_never_count() -> None:
    for directory in CONFIG_DIRS:
        for kind in ("resource", "data"):
            for rtype, name, body in resources(directory, kind):
                assert "count" not in body, (
                    f"{directory}: {rtype}.{name} uses count; key it by name with for_each"
                )
        for name, body in named_blocks(directory, "module").items():
            assert "count" not in body, f"module {name} uses count"
    keyed = [(t, n) for _, t, n, b in all_resources() if "for_each" in b]
    assert len(keyed) >= 15
