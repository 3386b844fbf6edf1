"""The package's folders are its layers (docs/development.md): a module imports from its own layer and the
layers below it, never above, and no chain of imports comes back to where it started. Read from the
source (every import, a function's own included), so a new upward arrow fails here."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "pipelines"
# lowest first; the stages and their steps (annotate, ner, classify) are one layer in three packages
LAYERS = [{"base"}, {"text"}, {"model"}, {"spark"}, {"store"}, {"annotate", "ner", "classify"}, {"run"}, {"tools"}]
FOLDERS = set().union(*LAYERS) - {"base"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in FOLDERS else "base"


def rank(module: str) -> int:
    return next(i for i, layer in enumerate(LAYERS) if layer_of(module) in layer)


def imports(path: Path) -> set[str]:
    """The pipelines modules ``path`` imports (``from pipelines import x``: pipelines.x when x is a module)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("pipelines"):
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                found.add(candidate if MODULES.get(candidate) else node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("pipelines.")}
    return {m for m in found if m in MODULES and m != "pipelines"}


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py") if "resources" not in p.parts}
GRAPH = {m: imports(p) for m, p in MODULES.items()}


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_no_import_reaches_up_a_layer(module):
    assert [m for m in GRAPH[module] if rank(m) > rank(module)] == []


def test_no_import_cycle():
    state, cycles = {}, []

    def visit(module, path):
        state[module] = "open"
        for target in sorted(GRAPH[module]):
            if state.get(target) == "open":
                cycles.append(path[path.index(target):] + [target] if target in path else [module, target])
            elif target not in state:
                visit(target, path + [target])
        state[module] = "done"

    for module in sorted(GRAPH):
        if module not in state:
            visit(module, [module])
    assert cycles == []
