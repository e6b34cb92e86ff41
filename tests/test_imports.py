"""No import cycles among the project's modules (pipeline/, classifiers/), and classifiers/
never imports Beam.

Every import counts, wherever it is written: at module level, inside a function (a lazy import
that only hides a cycle is still one) or under TYPE_CHECKING. Importing `a.b.c` also runs the
`__init__` of `a` and `a.b`, so those count as dependencies too, unless they are packages of
the importing module itself (already being imported when it runs)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("pipeline", "classifiers")


def project_modules() -> dict[str, Path]:
    mods = {}
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            mods[".".join(parts)] = path
    return mods


def imported_names(module: str, path: Path) -> set[str]:
    """Dotted names this module imports (`from m import x` gives m and m.x: x may be a module)."""
    is_pkg = path.name == "__init__.py"
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_pkg else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            names.add(target)
            names.update(f"{target}.{a.name}" for a in node.names)
    return names


def dependency_graph() -> dict[str, set[str]]:
    mods = project_modules()
    graph = {}
    for module, path in mods.items():
        own_packages = {".".join(module.split(".")[:i]) for i in range(1, module.count(".") + 1)}
        deps = set()
        for name in imported_names(module, path):
            parts = name.split(".")
            for i in range(1, len(parts) + 1):  # the module and the packages it runs on the way
                prefix = ".".join(parts[:i])
                if prefix in mods and prefix not in own_packages:
                    deps.add(prefix)
        deps.discard(module)
        graph[module] = deps
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def test_the_cycle_finder_finds_cycles():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_graph_sees_lazy_and_relative_imports():
    graph = dependency_graph()
    assert "classifiers.judge.errors" in graph["classifiers.judge.params"]  # from .errors import ...
    assert "pipeline.demo" in graph["pipeline.cli"]  # imported inside a function
    assert "classifiers.judge" in graph["pipeline.label_cmd"]  # the package's __init__ runs


def test_no_import_cycles():
    found = cycles(dependency_graph())
    assert not found, "import cycles: " + "; ".join(" <-> ".join(c) for c in found)


def test_classifiers_never_import_beam():
    mods = project_modules()
    offenders = [
        m
        for m, p in mods.items()
        if m.startswith("classifiers")
        and any(n == "apache_beam" or n.startswith("apache_beam.") for n in imported_names(m, p))
    ]
    assert not offenders


def test_the_cli_loads_no_heavy_library_a_command_may_not_use():
    """`curate --version`, `config show`, `inspect`, `report` and a run with those stages off load
    none of numba (MinHash, n-gram kernels), torch, transformers or vLLM (the judge): each is
    imported where its stage runs."""
    import subprocess
    import sys

    heavy = ("numba", "scipy", "torch", "transformers", "vllm", "lingua", "trafilatura")
    code = f"import sys, pipeline.cli, pipeline.graph; print(' '.join(m for m in {heavy!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"imported by `import pipeline.cli, pipeline.graph`: {out.stdout.strip()}"
