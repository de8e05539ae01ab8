"""The repository stands alone: no file in it reads, imports or links anything outside it.

The project grew beside a sibling folder named ``shared`` (design notes, data). Everything it needs from
there is carried in (``docs/DESIGN.md``, ``devkit/data/``), so a clone in any directory runs
``make test`` and ``make demo``. This scanner walks every file git knows (tracked, plus untracked
files that are not ignored) and reports each place that reaches outside the checkout:

* a relative path with ``..`` that leaves the repository, resolved from the file's folder
  (Markdown links, Terraform paths, prose);
* the sibling folder by a relative path, anywhere (code resolves relative paths from the
  working directory, the repo root, so that path names the folder beside the checkout),
  except a Markdown link that really lands in the repo's own ``shared/`` package;
* an absolute path into the workspace the project was developed in (``/work/...``), or into
  the folder beside this checkout (``<parent>/shared``);
* in Python, a path expression (``Path(__file__).resolve().parent...``, ``.parents[n]``,
  ``os.path.dirname``, ``REPO_ROOT.parent``, ``/ ".."``) evaluated to a folder above the root,
  or ``<unknown>.parent / "shared"``;
* a symlink whose target lies outside the repository;
* a mention of a document that exists only beside the repository (``FIELD-NOTES``,
  ``STYLE.md``, ``DESIGN.md`` while no such file is in the repository).

This file itself is left out of the scan, and builds the paths it plants from ``SIBLING``
rather than spelling them.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pytest

REPO = Path(__file__).resolve().parents[2]
THIS_FILE = Path(__file__).resolve().relative_to(REPO).as_posix()
# The folder beside the checkout, as a relative path: built, so this file does not spell it.
SIBLING = "/".join(("..", "shared"))

# Documents that live in the folder beside the repository, never in it (unless carried in).
OUTSIDE_DOCUMENTS = ("FIELD-NOTES", "STYLE.md", "DESIGN.md")
# The workspace the project was developed in; nothing may name a path there.
WORKSPACE_PATH = re.compile(r"(?<![\w.~-])/work/[\w.-]+")
# A relative path that starts with one or more `../` (not part of a longer path or a URL).
RELATIVE_UP = re.compile(r"(?<![\w.~/\\$})-])((?:\.\./)+[\w.@+-]*(?:/[\w.@+<>-]*)*)")
SIBLING_SHARED = re.compile(r"^(?:\.\./)+shared(?:/|$)")
PARENT_SHARED = re.compile(r"\.parent\s*/\s*[\"']shared\b")
# Names that code uses for the repository root, when their value is not visible (fixtures).
ROOT_NAMES = re.compile(r"^_?(repo|repo_root|root|repository|project_root|repo_dir|root_dir)$", re.IGNORECASE)
# Code, build and configuration files (``.txt``: requirements), as opposed to documentation.
CODE_SUFFIXES = {
    ".py",
    ".sh",
    ".mk",
    ".tf",
    ".yaml",
    ".yml",
    ".toml",
    ".cfg",
    ".ini",
    ".json",
    ".sql",
    ".txt",
}
CODE_NAMES = {"Makefile", "Dockerfile", "run"}
MAX_BYTES = 5_000_000
# A Python file without any of these builds no path from its own location or the working directory.
PATH_IDIOMS = ("__file__", ".parent", "os.path", "cwd", "..", "root", "repo", "REPO", "ROOT")
# Calls whose value is the path they are given.
SAME_PATH_CALLS = {
    "Path",
    "pathlib.Path",
    "PurePath",
    "PurePosixPath",
    "str",
    "os.fspath",
    "os.path.abspath",
    "os.path.realpath",
    "os.path.normpath",
}


@dataclass(frozen=True, order=True)
class Finding:
    path: str
    line: int
    reason: str
    text: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.reason}: {self.text}"


def repository_files(root: Path) -> list[str]:
    """Every file git tracks plus untracked files that are not ignored, relative to ``root``."""
    listings = (["ls-files", "-z"], ["ls-files", "-z", "--others", "--exclude-standard"])
    names: set[str] = set()
    for arguments in listings:
        done = subprocess.run(["git", "-C", str(root), *arguments], capture_output=True, check=True)
        names.update(name for name in done.stdout.decode().split("\0") if name)
    return sorted(names)


def _is_code(relative: str) -> bool:
    name = PurePosixPath(relative)
    return name.suffix in CODE_SUFFIXES or name.name in CODE_NAMES or name.name.startswith("Dockerfile")


def _escapes(start: PurePosixPath, relative: str) -> tuple[bool, PurePosixPath]:
    """Resolve ``relative`` from the folder ``start`` (relative to the root) without touching the
    disk; report whether it climbs above the root, and where it lands."""
    parts = list(start.parts)
    for part in relative.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                return True, PurePosixPath("..")
            parts.pop()
        else:
            parts.append(part)
    return False, PurePosixPath(*parts) if parts else PurePosixPath(".")


def _scan_text(relative: str, text: str, root: Path, documents: set[str]) -> Iterator[Finding]:
    folder = PurePosixPath(relative).parent
    markdown = relative.endswith(".md")
    sibling = str(root.resolve().parent / "shared")
    outside_names = [name for name in OUTSIDE_DOCUMENTS if not any(doc.startswith(name) for doc in documents)]
    mentions = re.compile("|".join(rf"(?<![\w/-]){re.escape(name)}" for name in outside_names) or "(?!)")
    triggers = ("../", "/work/", sibling, ".parent", *outside_names)
    if not any(trigger in text for trigger in triggers):
        return
    for number, line in enumerate(text.splitlines(), start=1):
        reasons: list[str] = []
        for match in RELATIVE_UP.finditer(line):
            token = match.group(1)
            escapes, lands = _escapes(folder, token)
            if escapes:
                reasons.append(f"relative path {token!r} leaves the repository")
            elif SIBLING_SHARED.match(token) and not (markdown and lands.parts[:1] == ("shared",)):
                reasons.append(f"{token!r} names the folder beside the repository")
        reasons += [
            f"absolute path {m.group(0)!r} outside the checkout" for m in WORKSPACE_PATH.finditer(line)
        ]
        if sibling != "/shared" and sibling in line:
            reasons.append(f"absolute path {sibling!r} beside the checkout")
        if not relative.endswith(".py") and PARENT_SHARED.search(line):
            reasons.append("'.parent / \"shared\"' climbs out of the repository")
        for match in mentions.finditer(line):
            reasons.append(f"{match.group(0)} is a document beside the repository")
        yield from (Finding(relative, number, reason, line.strip()) for reason in reasons)


_UNKNOWN = None


class _PathEvaluator(ast.NodeVisitor):
    """Evaluates path expressions as a depth below the repository root (root = 0, below 0 =
    outside), following module- and function-level assignments in source order."""

    def __init__(self, relative: str) -> None:
        self.file_depth = len(PurePosixPath(relative).parts)
        self.names: dict[str, int | None] = {}
        self.findings: list[tuple[int, str]] = []
        self._reported: set[int] = set()

    def report(self, node: ast.AST, reason: str) -> None:
        line = getattr(node, "lineno", 0)
        if line not in self._reported:
            self._reported.add(line)
            self.findings.append((line, reason))

    def depth(self, node: ast.expr) -> int | None:
        value = self._depth(node)
        if value is not None and value < 0:
            self.report(node, f"path expression climbs {-value} level(s) above the repository root")
        return value

    def _steps(self, base: int | None, parts: Iterable[ast.expr]) -> int | None:
        for part in parts:
            if base is None:
                return None
            if isinstance(part, ast.Constant) and isinstance(part.value, str):
                for piece in part.value.split("/"):
                    if piece == "..":
                        base -= 1
                    elif piece not in ("", "."):
                        base += 1
            else:
                self._depth(part)
                base += 1  # an unknown name below the base: at least one level down
        return base

    def _depth(self, node: ast.expr) -> int | None:
        if isinstance(node, ast.Name):
            if node.id == "__file__":
                return self.file_depth
            if node.id in self.names:
                return self.names[node.id]
            return 0 if ROOT_NAMES.match(node.id) else _UNKNOWN
        if isinstance(node, ast.Attribute):
            if node.attr == "parent":
                base = self.depth(node.value)
                if base is None:
                    return None
                return base - 1
            return _UNKNOWN
        if isinstance(node, ast.Subscript):
            if isinstance(node.value, ast.Attribute) and node.value.attr == "parents":
                base = self.depth(node.value.value)
                index = node.slice
                if base is not None and isinstance(index, ast.Constant) and isinstance(index.value, int):
                    return base - (index.value + 1)
            return _UNKNOWN
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            left = self.depth(node.left)
            if (
                left is None
                and isinstance(node.left, ast.Attribute)
                and node.left.attr == "parent"
                and isinstance(node.right, ast.Constant)
                and isinstance(node.right.value, str)
                and node.right.value.split("/")[0] == "shared"
            ):
                self.report(node, "'<path>.parent / \"shared\"' cannot be shown to stay in the repository")
            return self.depth_of_steps(left, [node.right], node)
        if isinstance(node, ast.Call):
            return self._call_depth(node)
        return _UNKNOWN

    def depth_of_steps(self, base: int | None, parts: list[ast.expr], node: ast.expr) -> int | None:
        value = self._steps(base, parts)
        if value is not None and value < 0:
            self.report(node, f"path expression climbs {-value} level(s) above the repository root")
        return value

    def _call_depth(self, node: ast.Call) -> int | None:
        function = ast.unparse(node.func)
        first = node.args[0] if node.args else None
        if function in SAME_PATH_CALLS:
            if first is None:
                return _UNKNOWN
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                return self.depth_of_steps(0, [first], node) if not first.value.startswith("/") else _UNKNOWN
            return self.depth_of_steps(self.depth(first), list(node.args[1:]), node)
        if function in ("Path.cwd", "pathlib.Path.cwd", "os.getcwd"):
            return 0
        if function == "os.path.dirname" and first is not None:
            base = self.depth(first)
            return self.depth_of_steps(None if base is None else base - 1, [], node)
        if function == "os.path.join" and first is not None:
            return self.depth_of_steps(self.depth(first), list(node.args[1:]), node)
        if isinstance(node.func, ast.Attribute):
            method = node.func.attr
            if method in ("resolve", "absolute", "expanduser"):
                return self.depth(node.func.value)
            if method == "joinpath":
                return self.depth_of_steps(self.depth(node.func.value), list(node.args), node)
        for argument in node.args:
            self.depth(argument)
        return _UNKNOWN

    def visit_Assign(self, node: ast.Assign) -> None:
        value = self.depth(node.value)
        for target in node.targets:
            if isinstance(target, ast.Name):
                self.names[target.id] = value

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if node.value is not None:
            value = self.depth(node.value)
            if isinstance(node.target, ast.Name):
                self.names[node.target.id] = value

    def visit_Return(self, node: ast.Return) -> None:
        if node.value is not None:
            self.depth(node.value)

    def visit_Expr(self, node: ast.Expr) -> None:
        self.depth(node.value)
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        self.depth(node)
        self.generic_visit(node)

    def visit_BinOp(self, node: ast.BinOp) -> None:
        self.depth(node)
        self.generic_visit(node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        self.depth(node)
        self.generic_visit(node)

    def visit_Subscript(self, node: ast.Subscript) -> None:
        self.depth(node)
        self.generic_visit(node)


def _scan_python(relative: str, text: str) -> Iterator[Finding]:
    if not any(path_idiom in text for path_idiom in PATH_IDIOMS):
        return
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return
    evaluator = _PathEvaluator(relative)
    evaluator.visit(tree)
    lines = text.splitlines()
    for line, reason in sorted(evaluator.findings):
        yield Finding(relative, line, reason, lines[line - 1].strip() if 0 < line <= len(lines) else "")


def scan_repository(
    root: Path, files: Iterable[str] | None = None, exclude: Iterable[str] = ()
) -> list[Finding]:
    """Every place in the repository at ``root`` that reads, imports or links outside it."""
    root = root.resolve()
    everything = repository_files(root)
    names = sorted(set(everything if files is None else files) - set(exclude))
    documents = {PurePosixPath(name).name for name in everything if (root / name).exists()}
    findings: list[Finding] = []
    for relative in names:
        path = root / relative
        if path.is_symlink():
            target = Path(os.path.realpath(path))
            if not target.is_relative_to(root):
                findings.append(Finding(relative, 0, "symlink to a path outside the repository", str(target)))
            continue
        if not path.is_file() or path.stat().st_size > MAX_BYTES:
            continue
        data = path.read_bytes()
        if b"\0" in data[:8192]:
            continue  # binary (the gzipped retail data)
        text = data.decode("utf-8", errors="replace")
        findings.extend(_scan_text(relative, text, root, documents))
        if relative.endswith(".py"):
            findings.extend(_scan_python(relative, text))
    return sorted(set(findings))


def _report(findings: list[Finding]) -> str:
    return "\n".join(str(finding) for finding in findings)


def test_no_file_reaches_outside_the_repository() -> None:
    findings = scan_repository(REPO, exclude=[THIS_FILE])
    assert not findings, "files that reach outside the repository:\n" + _report(findings)


def test_no_code_or_test_reads_the_data_beside_the_repository() -> None:
    """Code, tests, scripts and build files: none reads the sibling folder's data or any path outside."""
    code = [name for name in repository_files(REPO) if _is_code(name)]
    assert {"tests", "shared", "devkit", "functions"} <= {name.split("/")[0] for name in code}
    findings = scan_repository(REPO, files=code, exclude=[THIS_FILE])
    assert not findings, "code that reaches outside the repository:\n" + _report(findings)


def test_the_retail_sample_is_inside_the_repository() -> None:
    sample = REPO / "devkit" / "data" / "online_retail_sample.csv"
    assert sample.is_file() and not sample.is_symlink()
    readme = (REPO / "devkit" / "data" / "README.md").read_text()
    assert "CC BY 4.0" in readme and "Chen" in readme and "archive.ics.uci.edu" in readme


def test_the_design_document_is_inside_the_repository() -> None:
    design = REPO / "docs" / "DESIGN.md"
    assert design.is_file() and not design.is_symlink()
    headings = {line[3:].strip() for line in design.read_text().splitlines() if line.startswith("## ")}
    assert {"Who uses it", "The flow", "Decisions"} <= headings


# --- the scanner itself, on planted violations -------------------------------------------------

PLANTED: dict[str, str] = {
    "README.md": f"The contract is `{SIBLING}/DESIGN.md`.\n",
    "docs/guide.md": f"See [the data](../{SIBLING}/data/README.md).\n",
    "devkit/loader.py": (
        f'import pandas\nframe = pandas.read_csv("{SIBLING}/data/online_retail_sample.csv")\n'
    ),
    "tests/test_data.py": (
        "from pathlib import Path\n"
        "REPO_ROOT = Path(__file__).resolve().parent.parent\n"
        'DATA = REPO_ROOT.parent / "shared" / "data"\n'
    ),
    "tests/test_parents.py": "from pathlib import Path\n"
    + 'SAMPLE = Path(__file__).resolve().parents[2] / "shared"\n',
    "tests/test_fixture.py": "def test_x(repo_root):\n"
    + '    assert (repo_root.parent / "shared" / "data").exists()\n',
    "tests/test_oswalk.py": (
        'import os\nHERE = os.path.dirname(os.path.abspath(__file__))\nUP = os.path.join(HERE, "..", "..")\n'
    ),
    "tests/test_unknown.py": 'def f(base):\n    return base.parent / "shared"\n',
    "Makefile": "data:\n\tcp /work/shared/data/online_retail_sample.csv devkit/data/\n",
    "infra/notes.tf": "# read by hand from FIELD-NOTES\n",
}
CLEAN: dict[str, str] = {
    "shared/settings.py": "from pathlib import Path\nREPO_ROOT = Path(__file__).resolve().parent.parent\n",
    "shared/rows.py": "from pathlib import Path\n"
    + 'TABLES = Path(__file__).resolve().parent.parent / "schemas"\n',
    "tests/conftest.py": "from pathlib import Path\n"
    + 'SHARED = Path(__file__).resolve().parents[1] / "shared"\n',
    "shared/schemas/README.md": "| `../sql/views/<view>.sql` | views |\n",
    "devkit/README.md": f"The package is [`shared/`]({SIBLING}/topology.json). Etc...\n",
    "tests/test_registry.py": 'BAD = ("../etc", "a/../b")\n',
    "docs/DESIGN.md": "# design\n",
    "data.csv": "X;Y\n1;2\n",
}


def _plant(root: Path, files: dict[str, str]) -> None:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


@pytest.fixture
def planted_repo(tmp_path: Path) -> Path:
    root = tmp_path / "checkout"
    root.mkdir()
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    (root / ".gitignore").write_text(".venv/\n")
    _plant(root, {**PLANTED, **CLEAN})
    (tmp_path / "shared").mkdir()
    (root / "devkit" / "data").mkdir(parents=True)
    (root / "devkit" / "data" / "outside.csv").symlink_to(tmp_path / "shared")
    (root / "devkit" / "data" / "inside.csv").symlink_to(root / "data.csv")
    _plant(root, {".venv/lib/site.py": 'X = "/work/shared/data"\n'})  # ignored by git: not scanned
    return root


def test_scanner_finds_every_planted_violation(planted_repo: Path) -> None:
    findings = scan_repository(planted_repo)
    lines: dict[str, set[int]] = {}
    for finding in findings:
        lines.setdefault(finding.path, set()).add(finding.line)
    assert set(lines) == {*PLANTED, "devkit/data/outside.csv"}, _report(findings)
    assert lines["tests/test_data.py"] == {3}
    assert lines["tests/test_parents.py"] == {2}
    assert lines["tests/test_fixture.py"] == {2}
    assert lines["tests/test_oswalk.py"] == {3}
    assert lines["devkit/loader.py"] == {2}


def test_scanner_finds_the_sibling_folder_by_its_absolute_path(planted_repo: Path) -> None:
    sibling = planted_repo.parent / "shared" / "data" / "x.csv"
    _plant(planted_repo, {"bench/load.py": f"PATH = {str(sibling)!r}\n"})
    findings = scan_repository(planted_repo, files=["bench/load.py"])
    beside = str(sibling.parent.parent)
    assert [finding.reason for finding in findings] == [f"absolute path {beside!r} beside the checkout"]


def test_scanner_finds_reads_of_the_data_beside_the_repository(planted_repo: Path) -> None:
    files = ["devkit/loader.py", "tests/test_data.py", "shared/settings.py", "tests/conftest.py"]
    findings = scan_repository(planted_repo, files=files)
    assert {finding.path for finding in findings} == {"devkit/loader.py", "tests/test_data.py"}


def test_a_design_document_carried_in_clears_mentions_of_it(planted_repo: Path) -> None:
    _plant(planted_repo, {"shared/ingest.py": '"""See DESIGN.md, "Webhook ingestion"."""\n'})
    assert scan_repository(planted_repo, files=["shared/ingest.py"]) == []
    (planted_repo / "docs" / "DESIGN.md").unlink()
    findings = scan_repository(planted_repo, files=["shared/ingest.py"])
    assert [finding.reason for finding in findings] == ["DESIGN.md is a document beside the repository"]
