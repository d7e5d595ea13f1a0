"""The code's shape: the package never imports the top-level files, no module outside localstt/models/
names a model kind, and the README's layout section lists every module there is."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from store_env import REPO_ROOT

from localstt.models import families

PACKAGE = REPO_ROOT / "localstt"
TOP_LEVEL = ["model_loader.py", "export_models.py", "transcribe_ui.py"]


def package_sources() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def imported_modules(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
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


def test_no_model_kind_is_named_outside_the_families():
    kinds = {family.kind for family in families() if not family.kind.startswith("test-")}
    assert kinds == {"nemo-asr", "salm", "sortformer"}
    outside = [p for p in package_sources() if PACKAGE / "models" not in p.parents]
    outside += [REPO_ROOT / name for name in TOP_LEVEL]
    named = [
        f"{path.relative_to(REPO_ROOT)}:{node.lineno}: {node.value!r}"
        for path in outside
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Constant) and node.value in kinds
    ]
    assert named == []


def test_the_readme_lists_every_module_of_the_package():
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## How the code is laid out") :]
    tree = section[section.index("```") + 3 : section.index("```", section.index("```") + 3)]
    listed: set[str] = set()
    folder = ""
    for line in tree.splitlines():
        match = re.match(r"^(\s*)(\S+)", line)
        if not match or match.group(2) in ("localstt/",):
            continue
        indent, name = len(match.group(1)), match.group(2)
        if name.endswith("/"):
            folder = name
            # A folder's modules may be named on its own line: "loading/  ... nemo_archive.py, salm.py".
            listed |= {folder + other for other in re.findall(r"([a-z_]+\.py)", line)}
        elif indent >= 4 and folder:
            listed.add(folder + name)
        else:
            folder = ""
            listed.add(name if indent == 0 else name)
    modules = {p.relative_to(PACKAGE).as_posix() for p in package_sources() if p.name != "__init__.py"}
    assert modules <= listed, f"not in the README's layout: {sorted(modules - listed)}"
    assert set(TOP_LEVEL) <= listed
    assert {name for name in listed if name.endswith(".py")} - set(TOP_LEVEL) <= modules, "listed but missing"
