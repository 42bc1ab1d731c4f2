"""The package's imports run one way: no cycle between instag_hf modules, lazy imports included."""

import ast
from pathlib import Path

import instag_hf

PACKAGE = Path(instag_hf.__file__).parent
#: The real order of the package: a package may import those before it, never one after it
#: or another package of its own level. Level 0 are the leaf modules everything shares.
ORDER = (
    ("schema", "samples", "version", "store", "redact", "strict_json"),
    ("embeddings",),  # a service of tagging, normalization, selection and quality
    ("analysis",),
    ("normalize",),
    ("tagging",),
    ("testing",),
    ("selection",),
    ("quality",),
    ("scoring",),
    ("reporting",),
    ("publish",),
    ("pipeline",),
    ("cli",),
    ("__init__", "__main__"),
)
LAYERS = {name: level for level, names in enumerate(ORDER) for name in names}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _runtime_nodes(tree: ast.AST):
    """Every node except those under ``if TYPE_CHECKING:`` (hints only, never run)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            stack.extend(node.orelse)
            continue
        yield node
        stack.extend(ast.iter_child_nodes(node))


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """The instag_hf modules ``path`` imports, at the top or inside functions."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in _runtime_nodes(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            targets = [f"{source}.{a.name}" if f"{source}.{a.name}" in modules else source for a in node.names]
        else:
            continue
        found.update(t for t in targets if t in modules and t != name)
    return found


def graph() -> dict[str, set[str]]:
    paths = sorted(PACKAGE.rglob("*.py"))
    modules = {module_name(p) for p in paths}
    return {module_name(p): imports_of(p, modules) for p in paths}


def test_no_import_cycle_between_modules():
    edges = graph()
    state: dict[str, int] = {}
    cycles = []

    def visit(node, trail):
        state[node] = 1
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                cycles.append(trail[trail.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, trail + [nxt])
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def layer(module: str) -> int:
    parts = module.split(".")
    return LAYERS[parts[1] if len(parts) > 1 else "__init__"]


def package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_imports_go_one_way_through_the_pipeline_steps():
    """Between packages only downward: an import of a later package, or of another package of
    the same level (but the leaf modules of level 0), is against the pipeline's direction."""
    wrong = sorted(f"{a} -> {b}" for a, targets in graph().items() for b in targets
                   if a != "instag_hf" and package(a) != package(b)
                   and (layer(b) > layer(a) or (layer(b) == layer(a) and layer(a) > 0)))
    assert not wrong, "imports against the pipeline's direction:\n" + "\n".join(wrong)


def test_every_package_has_a_place_in_the_order():
    names = {package(m) for m in graph() if m != "instag_hf"}
    assert not names - set(LAYERS), f"add to ORDER: {sorted(names - set(LAYERS))}"


def test_the_layout_names_the_pipeline_steps():
    for step in ("tagging", "normalize", "analysis", "selection", "reporting", "publish", "quality", "cli",
                 "testing"):
        assert (PACKAGE / step / "__init__.py").is_file(), step
    assert not [p.name for p in PACKAGE.glob("*.py")
                if p.stem not in ("__init__", "__main__", "schema", "samples", "version", "store", "redact", "strict_json",
                                  "embeddings", "pipeline")]


def test_test_tools_stay_out_of_the_package():
    """The loopback servers, the fake Hub and the synthetic corpora live in tests/support; the package
    keeps only what users call (the keyword backend's earlier import path)."""
    lines = sum(len(p.read_text(encoding="utf-8").splitlines()) for p in (PACKAGE / "testing").glob("*.py"))
    assert lines < 200
    from instag_hf.tagging.backends import make_backend
    from instag_hf.testing import KeywordBackend

    assert isinstance(make_backend("keyword"), KeywordBackend)
