"""The package's import layers (CONTRIBUTING.md, "Layers"): each layer imports only layers below it, and no
module imports itself back through others. Function-local imports count: a cycle kept alive by an import
inside a function is still a cycle."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "bilevel"

#: bottom to top; the same list is printed in CONTRIBUTING.md. ``bilevel/__init__.py`` (the public facade)
#: sits above everything and may import any layer.
LAYERS = ["files", "limits", "accounting", "data", "networks", "classifiers", "problems", "oracle", "results", "components",
          "methods", "run", "online", "plotting", "experiments", "workflow", "cli"]


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    """Every ``bilevel`` module a file imports (absolute names), wherever the import statement is;
    ``from . import tables`` imports the module ``tables`` (not the package), ``from . import get`` the
    package that defines ``get``."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "bilevel"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            elif node.module and node.module.split(".")[0] == "bilevel":
                target = node.module
            else:
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in modules else target)
    return found


def _graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: {t for t in _imports(path, set(files)) if t in files and t != name} for name, path in files.items()}


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return None if len(parts) == 1 else parts[1]


def test_every_module_belongs_to_a_layer():
    unknown = sorted({_layer(m) for m in _graph()} - set(LAYERS) - {None})
    assert not unknown, f"modules outside the stated layers: {unknown} (add them to LAYERS and CONTRIBUTING.md)"


def test_no_import_goes_up_a_layer():
    upward = []
    for module, targets in _graph().items():
        here = _layer(module)
        if here is None:  # the facade
            continue
        for target in targets:
            there = _layer(target)
            if there is None or LAYERS.index(there) > LAYERS.index(here):
                upward.append(f"{module} -> {target}")
    assert not upward, "imports against the layer order:\n" + "\n".join(sorted(upward))


def test_no_import_cycle():
    graph = _graph()
    state: dict[str, int] = {}

    def visit(node, stack):
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                pytest.fail("import cycle: " + " -> ".join(stack[stack.index(nxt):] + [nxt]))
            if nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])


def test_the_layers_are_the_documented_ones():
    text = (PACKAGE.parents[1] / "CONTRIBUTING.md").read_text()
    assert " < ".join(f"`{layer}`" for layer in LAYERS) in text
