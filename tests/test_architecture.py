"""The layout stays what docs/architecture.md says: every stage package is in the import
contract CI checks and is described in the document, and nothing imports a stage above it."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "broadcaster"


def stages() -> list[str]:
    return sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file())


def layers() -> list[set[str]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    (contract,) = config["tool"]["importlinter"]["contracts"]
    return [
        {name.strip().removeprefix("broadcaster.") for name in layer.split("|")}
        for layer in contract["layers"]
    ]


def test_every_stage_is_in_the_import_contract_and_the_architecture_document():
    listed = set().union(*layers())
    doc = (ROOT / "docs" / "architecture.md").read_text()
    for stage in stages():
        assert stage in listed, f"broadcaster/{stage} is missing from [tool.importlinter]"
        assert f"`{stage}/`" in doc, f"docs/architecture.md does not describe {stage}/"


def test_no_module_imports_a_stage_above_its_own():
    """The same rule lint-imports enforces, checked here too so a plain test run shows it."""
    rank = {stage: i for i, layer in enumerate(layers()) for stage in layer}
    wrong = []
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).parts
        if len(parts) < 2:
            continue  # broadcaster/__init__.py, __main__.py: the package itself
        own = rank[parts[0]]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            for name in names:
                bits = name.split(".")
                if bits[0] != "broadcaster" or len(bits) < 2 or bits[1] not in rank:
                    continue
                if rank[bits[1]] < own or (rank[bits[1]] == own and bits[1] != parts[0]):
                    wrong.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {name}")
    assert not wrong, "\n".join(wrong)
