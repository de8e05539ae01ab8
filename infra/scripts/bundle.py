#!/usr/bin/env python3
"""Bundle each Cloud Function from its import closure: the function folder plus only the files of
``shared/`` that its code can import or read.

    python3 infra/scripts/bundle.py [--repo ROOT] [--out DIR] [NAME ...]
    python3 infra/scripts/bundle.py --list NAME          # print the closure, write nothing

For every ``functions/<name>/main.py`` (or the NAMEs given) it writes ``DIR/<name>/`` (default
``build/functions/<name>/``): the function folder (``main.py``, ``requirements.txt``, ...) and the
closure of ``shared``:

* modules: starting at ``main.py``, every ``import shared...`` / ``from shared... import ...``
  anywhere in a module (lazy imports inside functions too: they run as well), relative imports,
  and ``from package import name`` where ``name`` is a submodule, followed transitively;
* the ``__init__.py`` of every package on the way (importing ``shared.a.b`` runs ``shared/__init__``
  and ``shared/a/__init__``), followed like any other module;
* data: the non-Python files a closure module refers to. A module refers to a data folder when the
  folder's path components (relative to ``shared/``) all appear among its path-like string
  constants (no whitespace, so messages and docstrings do not count), e.g. ``Path(...) / "schemas"
  / "tables"`` brings ``shared/schemas/tables/*``; a top-level file (``topology.json``) when its
  name appears. Markdown files are documentation, never bundled.

Nothing else of the repository is copied (no devkit/, tests/, bench/, no unused shared module).
Only the standard library is used: Cloud Build runs this with the builder image's python3.
File modes are normalised (0644 / 0755) and Terraform's archive_file zeroes timestamps, so a
bundle's zip, and its content-hash object name, change only when a bundled file's content does.
"""

from __future__ import annotations

import argparse
import ast
import shutil
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

PACKAGE = "shared"
SKIP_PARTS = {"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache"}
SKIP_SUFFIXES = {".pyc", ".pyo", ".md"}


class BundleError(Exception):
    """The repository cannot be bundled as asked (missing function, requirements, module)."""


@dataclass
class Closure:
    """What one entry point needs of the package: modules (dotted names) and files (relative to the
    repository root), plus the imports of package modules that resolve to no file."""

    modules: set[str] = field(default_factory=set)
    files: set[Path] = field(default_factory=set)
    unresolved: set[str] = field(default_factory=set)


def _skipped(path: Path) -> bool:
    return bool(SKIP_PARTS.intersection(path.parts)) or path.suffix in SKIP_SUFFIXES


def module_path(repo: Path, dotted: str) -> Path | None:
    """The file that defines module ``dotted`` under ``repo`` (a package's ``__init__.py``)."""
    base = repo.joinpath(*dotted.split("."))
    for candidate in (base / "__init__.py", base.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def _resolve_relative(current: str, is_package: bool, level: int, module: str | None) -> str:
    parts = current.split(".")
    if not is_package:
        parts = parts[:-1]
    if level > 1:
        parts = parts[: len(parts) - (level - 1)]
    return ".".join([*parts, module] if module else parts)


def imported_names(tree: ast.AST, current: str, is_package: bool) -> set[str]:
    """Every module name an AST may import, anywhere in it (module level or inside functions).
    ``from a import b`` yields both ``a`` and ``a.b`` (``b`` may be a submodule)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = (
                _resolve_relative(current, is_package, node.level, node.module)
                if node.level
                else node.module or ""
            )
            if not base:
                continue
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
    return names


def _docstring_nodes(tree: ast.AST) -> set[int]:
    found: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            found.add(id(node.value))  # bare string expressions: docstrings, never read as paths
    return found


def path_tokens(tree: ast.AST) -> set[str]:
    """Path components of the module's path-like string constants (no whitespace)."""
    skip = _docstring_nodes(tree)
    tokens: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
            text = node.value.strip()
            if text and not any(ch.isspace() for ch in text):
                tokens.update(part for part in text.split("/") if part)
    return tokens


def data_files(repo: Path, package: str = PACKAGE) -> dict[tuple[str, ...], list[Path]]:
    """Non-Python files of the package by folder (components relative to the package root)."""
    root = repo / package
    by_folder: dict[tuple[str, ...], list[Path]] = {}
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if not path.is_file() or path.suffix == ".py" or _skipped(relative):
            continue
        by_folder.setdefault(relative.parent.parts, []).append(path)
    return by_folder


def referenced_data(tokens: set[str], folders: dict[tuple[str, ...], list[Path]]) -> set[Path]:
    found: set[Path] = set()
    for folder, paths in folders.items():
        if folder:
            if set(folder) <= tokens:
                found.update(paths)
        else:
            found.update(path for path in paths if path.name in tokens)
    return found


def closure(repo: Path, entry: Path, package: str = PACKAGE) -> Closure:
    """The package modules and data files that ``entry`` (a file under ``repo``) needs."""
    result = Closure()
    folders = data_files(repo, package)
    pending: list[tuple[Path, str, bool]] = [(entry, "__main__", False)]
    seen_files: set[Path] = set()

    def want(dotted: str) -> None:
        if dotted in result.modules:
            return
        path = module_path(repo, dotted)
        if path is None:
            return
        result.modules.add(dotted)
        pending.append((path, dotted, path.name == "__init__.py"))
        # Importing a.b.c runs a/__init__ and a/b/__init__ first.
        parts = dotted.split(".")
        for depth in range(1, len(parts)):
            want(".".join(parts[:depth]))

    # The entry may itself live in the package (python -m shared.training): its parents run too.
    try:
        relative_entry: Path | None = entry.resolve().relative_to(repo.resolve())
    except ValueError:
        relative_entry = None
    if relative_entry is not None and relative_entry.parts[0] != package:
        relative_entry = None  # functions/<name>/main.py: copied with its folder, not as shared/
    if relative_entry is not None:
        dotted = ".".join(relative_entry.with_suffix("").parts)
        if dotted.endswith(".__init__") or dotted.endswith(".__main__"):
            dotted = dotted.rsplit(".", 1)[0]
        want(dotted)

    while pending:
        path, dotted, is_package = pending.pop()
        if path in seen_files:
            continue
        seen_files.add(path)
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for name in sorted(imported_names(tree, dotted, is_package)):
            if name == package or name.startswith(package + "."):
                if module_path(repo, name) is not None:
                    want(name)
                elif module_path(repo, name.rsplit(".", 1)[0]) is None:
                    result.unresolved.add(name)  # neither a module nor a name in one
        result.files.update(p.relative_to(repo) for p in referenced_data(path_tokens(tree), folders))

    result.files.update(
        module_path(repo, name).relative_to(repo)  # type: ignore[union-attr]
        for name in result.modules
    )
    if relative_entry is not None:
        result.files.add(relative_entry)
    return result


def _copy(source: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, dest)


def bundle_function(repo: Path, name: str, out: Path, package: str = PACKAGE) -> list[Path]:
    """Write ``out/<name>/`` and return its files (relative to it)."""
    source = repo / "functions" / name
    if not (source / "main.py").is_file():
        raise BundleError(f"functions/{name}/main.py does not exist")
    if not (source / "requirements.txt").is_file():
        raise BundleError(f"functions/{name} has no requirements.txt (Cloud Functions installs from it)")
    found = closure(repo, source / "main.py", package)
    if found.unresolved:
        raise BundleError(f"functions/{name} imports {sorted(found.unresolved)}, which do not exist")
    dest = out / name
    if dest.exists():
        shutil.rmtree(dest)
    for path in sorted(source.rglob("*")):
        relative = path.relative_to(source)
        if path.is_file() and not (
            SKIP_PARTS.intersection(relative.parts) or path.suffix in {".pyc", ".pyo"}
        ):
            _copy(path, dest / relative)
    for relative in sorted(found.files):
        _copy(repo / relative, dest / relative)
    for path in dest.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    dest.chmod(0o755)
    return sorted(p.relative_to(dest) for p in dest.rglob("*") if p.is_file())


def implemented_functions(repo: Path) -> list[str]:
    return sorted(p.parent.name for p in (repo / "functions").glob("*/main.py"))


def bundle_all(repo: Path, out: Path, names: Iterable[str] = ()) -> dict[str, list[Path]]:
    if not (repo / "functions").is_dir() or not (repo / PACKAGE).is_dir():
        raise BundleError(f"{repo} has no functions/ or {PACKAGE}/ folder")
    chosen = list(names) or implemented_functions(repo)
    if not chosen:
        raise BundleError(f"no functions/<name>/main.py found under {repo}")
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.iterdir():  # a function that no longer exists must not keep its old bundle
        if stale.is_dir() and stale.name not in chosen and not names:
            shutil.rmtree(stale)
    return {name: bundle_function(repo, name, out) for name in chosen}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "names", nargs="*", help="functions to bundle (default: every functions/<name>/main.py)"
    )
    parser.add_argument("--repo", type=Path, default=Path(__file__).resolve().parents[2])
    parser.add_argument("--out", type=Path, default=None, help="default: <repo>/build/functions")
    parser.add_argument("--list", action="store_true", help="print each closure's files, write nothing")
    args = parser.parse_args(argv)
    repo = args.repo.resolve()
    out = (args.out or repo / "build" / "functions").resolve()
    try:
        if args.list:
            for name in args.names or implemented_functions(repo):
                found = closure(repo, repo / "functions" / name / "main.py")
                print(f"{name}:")
                for path in sorted(found.files):
                    print(f"  {path}")
            return 0
        bundles = bundle_all(repo, out, args.names)
    except BundleError as exc:
        print(f"bundle: {exc}", file=sys.stderr)
        return 1
    for name, files in bundles.items():
        print(f"bundled {name}: {len(files)} files -> {out / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
