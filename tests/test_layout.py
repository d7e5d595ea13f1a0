"""The code's shape: the package never imports the top-level files, its imports never close a circle,
no module outside localstt/models/ names a model family or kind, and docs/architecture.md lists every
module there is, no module is over 400 lines and transcribe_ui.py stays a thin entry point."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from localstt.models import families
from testkit.store_env import REPO_ROOT

PACKAGE = REPO_ROOT / "localstt"
TOP_LEVEL = ["model_loader.py", "export_models.py", "transcribe_ui.py"]


def package_sources() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def module_name(path: Path, root: Path = REPO_ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, root: Path = REPO_ROOT) -> set[str]:
    """Every module `path` imports: at module level, inside functions and under TYPE_CHECKING alike,
    relative imports resolved; `from a.b import c` counts as a.b and as a.b.c."""
    here = module_name(path, root)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            found.add(module)
            found |= {f"{module}.{alias.name}" for alias in node.names}
    return found


def import_graph(sources: list[Path], root: Path = REPO_ROOT) -> dict[str, set[str]]:
    """Module -> the package's modules it imports (a submodule importing its own package aside)."""
    modules = {module_name(path, root): path for path in sources}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        edges: set[str] = set()
        for target in imported_modules(path, root):
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name and not name.startswith(target + "."):
                edges.add(target)
        graph[name] = edges
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in sorted(graph[node]):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_package_imports_nothing_from_the_top_level():
    top = {name.removesuffix(".py") for name in TOP_LEVEL}
    offenders = {
        f"{path.relative_to(REPO_ROOT)}: {module}"
        for path in package_sources()
        for module in imported_modules(path)
        if module.split(".")[0] in top
    }
    assert offenders == set()


def test_no_import_closes_a_circle():
    assert circles(import_graph(package_sources())) == []


def test_the_circle_check_finds_a_circle(tmp_path):
    """The check above can fail: two modules that import each other (one only under TYPE_CHECKING,
    the other inside a function) are one circle."""
    package = tmp_path / "localstt"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from localstt.b import B\n"
    )
    (package / "b.py").write_text("def f():\n    from . import a\n")
    (package / "c.py").write_text("import localstt.a\n")
    graph = import_graph(sorted(package.rglob("*.py")), tmp_path)
    assert circles(graph) == [["localstt.a", "localstt.b"]]


def test_no_family_name_or_kind_is_named_outside_the_families():
    """Kinds (as config.toml writes them) and family names (as the user reads them, in any case)
    appear only in localstt/models/ (and in config.toml, which is not code): in no string, docstring
    or comment of any other module. A NeMo class name that merely shares letters with a kind (SALM)
    is not a kind."""
    shipped = [family for family in families() if not family.kind.startswith("test-")]
    assert shipped  # the registry's families, not a list written here

    kinds = re.compile("|".join(rf"(?<![\w-]){re.escape(family.kind)}(?![\w-])" for family in shipped))
    # A name in any case, also inside a longer name ("Parakeet-TDT", "ParakeetOptions"), but not as
    # the prefix of a setting's key ("parakeet_batch_size" is config.toml's, by design).
    names = re.compile(
        "|".join(rf"(?<![A-Za-z0-9_])(?i:{re.escape(family.name)})(?![a-z0-9_])" for family in shipped)
    )
    outside = [p for p in package_sources() if PACKAGE / "models" not in p.parents]
    outside += [REPO_ROOT / name for name in TOP_LEVEL]
    named = [
        f"{path.relative_to(REPO_ROOT)}:{number}: {line.strip()}"
        for path in outside
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        if kinds.search(line) or names.search(line)
    ]
    assert named == []


def test_the_architecture_page_lists_every_module_of_the_package():
    page = (REPO_ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    section = page[page.index("## The layout") :]
    tree = section[section.index("```") + 3 : section.index("```", section.index("```") + 3)]
    listed: set[str] = set()
    folders: list[tuple[int, str]] = []  # (indent, "runs/") of the folders the next lines are in
    for line in tree.splitlines():
        match = re.match(r"^(\s*)(\S+)", line)
        if not match or match.group(2) == "localstt/":
            continue
        indent, name = len(match.group(1)), match.group(2)
        while folders and folders[-1][0] >= indent:
            folders.pop()
        prefix = "".join(folder for _, folder in folders) if indent else ""
        if name.endswith("/"):
            folders.append((indent, name))
        else:
            listed.add(prefix + name)
    modules = {p.relative_to(PACKAGE).as_posix() for p in package_sources() if p.name != "__init__.py"}
    assert modules <= listed, f"not in docs/architecture.md's layout: {sorted(modules - listed)}"
    assert set(TOP_LEVEL) <= listed
    listed_modules = {name for name in listed if name.endswith(".py")} - set(TOP_LEVEL)
    assert listed_modules <= modules, f"listed but missing: {sorted(listed_modules - modules)}"


def test_nothing_edits_sys_path():
    """The test kit and the benchmarks are found by the packaging, pytest's pythonpath and the
    PYTHONPATH children are given (docs/development.md, "The test kit"): no file of the tests, the
    kit, the benchmarks or the scripts touches sys.path, in its code or in the code it runs."""
    folders = ("tests", "testkit", "benchmarks", "scripts")
    offenders = [
        f"{path.relative_to(REPO_ROOT)}:{number}"
        for folder in folders
        for path in sorted((REPO_ROOT / folder).rglob("*.py"))
        if path.name != "test_layout.py"
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        if "sys.path" in line
    ]
    assert offenders == []


MAX_MODULE_LINES = 400  # each module does one thing; past this it is doing two


def test_no_module_is_over_400_lines_and_the_app_entry_point_stays_thin():
    long = {
        str(path.relative_to(REPO_ROOT)): lines
        for path in package_sources()
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    }
    assert long == {}, f"split these modules (one concern each): {long}"
    app_entry = len((REPO_ROOT / "transcribe_ui.py").read_text(encoding="utf-8").splitlines())
    assert app_entry <= 40, f"transcribe_ui.py has {app_entry} lines; the page lives in localstt/web/"
