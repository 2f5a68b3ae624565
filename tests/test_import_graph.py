"""The import graph of the library: no cycles, and the models depend on nothing above them.

Every `import` statement counts, at module level or inside a function (a lazy import is still a
dependency). `docs/architecture.md` draws the layers this test enforces.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("im2wav", "pipelines")
# What the models (the networks and their configs) must never import: training objectives,
# sampling, the pipeline and everything that sits on top of them.
ABOVE_MODELS = ("im2wav.losses", "im2wav.sampling", "im2wav.training", "im2wav.evaluation", "im2wav.convert",
                "im2wav.cli", "im2wav.pipelines")


def module_name(path: Path) -> str:
    """Dotted name of a source file; `pipelines/` installs as `im2wav.pipelines` (pyproject's package-dir)."""
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[0] == "pipelines":
        parts.insert(0, "im2wav")
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def resolve(module: str, is_package: bool, node: ast.ImportFrom | ast.Import, known: set[str]) -> list[str]:
    """The project modules one import statement of `module` refers to."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        if node.level:
            base = module.split(".")
            base = base[: len(base) - node.level + (1 if is_package else 0)]
            prefix = ".".join(base + ([node.module] if node.module else []))
        else:
            prefix = node.module or ""
        # `from package import submodule` imports the submodule; `from module import name` the module
        names = [f"{prefix}.{alias.name}" if f"{prefix}.{alias.name}" in known else prefix for alias in node.names]
    found = []
    for name in names:
        while name and name not in known:  # `import a.b.c` where c is an attribute: the deepest module
            name = name.rpartition(".")[0]
        if name:
            found.append(name)
    return found


def import_graph() -> dict[str, set[str]]:
    files = [p for package in PACKAGES for p in sorted((REPO / package).rglob("*.py"))]
    known = {module_name(p) for p in files}
    graph: dict[str, set[str]] = {}
    for path in files:
        module = module_name(path)
        tree = ast.parse(path.read_text(), filename=str(path))
        edges = set()
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                edges.update(resolve(module, path.name == "__init__.py", node, known))
        edges.discard(module)
        graph[module] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph as a list of modules (first == last), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph()


def test_the_graph_is_read(graph):
    # the parser sees relative, absolute and lazy imports (guards against a test that reads nothing)
    assert "im2wav.models.codebook" in graph["im2wav.models.vqvae"]
    assert "im2wav.models.vqvae" in graph["im2wav.losses.vqvae"]
    assert "im2wav.losses.audio" in graph["im2wav.losses.vqvae"]
    assert "im2wav.models.prior" in graph["im2wav.training.stages"]  # imported inside a function
    assert "im2wav.pipelines.pipeline_im2wav" in graph["im2wav.pipelines"]
    assert "im2wav.models.vqvae" in graph["im2wav.pipelines.pipeline_im2wav"]


def test_no_import_cycles(graph):
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def part_of(module: str) -> str:
    """The part a module belongs to: `im2wav.models.vqvae` -> `im2wav.models`."""
    return ".".join(module.split(".")[:2])


def test_no_cycles_between_parts(graph):
    """Between packages too: `models/vqvae.py -> losses/audio.py` plus `losses/tokens.py -> models/prior.py`
    is no module cycle, but it ties `models` and `losses` into one knot."""
    parts: dict[str, set[str]] = {}
    for module, targets in graph.items():
        parts.setdefault(part_of(module), set()).update(part_of(t) for t in targets if part_of(t) != part_of(module))
    cycle = find_cycle(parts)
    assert cycle is None, "cycle between parts: " + " -> ".join(cycle)


def test_models_import_nothing_above_them(graph):
    arrows = sorted((module, target) for module, targets in graph.items() if module.startswith("im2wav.models")
                    for target in targets if target.startswith(ABOVE_MODELS))
    assert arrows == [], "models must not import " + ", ".join(f"{a} -> {b}" for a, b in arrows)


def test_losses_import_only_models_and_each_other(graph):
    arrows = sorted((module, target) for module, targets in graph.items() if module.startswith("im2wav.losses")
                    for target in targets if not target.startswith(("im2wav.models", "im2wav.losses", "im2wav.kv_cache")))
    assert arrows == [], ", ".join(f"{a} -> {b}" for a, b in arrows)


def test_the_checker_finds_cycles_and_arrows():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None
    tree = ast.parse("from ..losses import audio\nfrom . import codebook\nimport im2wav.sampling")
    known = {"im2wav.losses", "im2wav.losses.audio", "im2wav.models.codebook", "im2wav.sampling"}
    found = [t for node in tree.body for t in resolve("im2wav.models.vqvae", False, node, known)]
    assert found == ["im2wav.losses.audio", "im2wav.models.codebook", "im2wav.sampling"]
