"""Import layering at runtime: the task suite and datasets never load the model stack."""

import subprocess
import sys


def test_tasks_and_data_do_not_load_the_model_stack():
    code = (
        "import sys, cos_jax.tasks, cos_jax.data\n"
        "bad = [m for m in sys.modules if m.startswith(('cos_jax.wan', 'cos_jax.sampling', 'cos_jax.probes'))]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def _imports(module: str, path, modules: set[str]) -> set[str]:
    """The cos_jax modules a file imports, at module level or inside functions (`from pkg import sub`
    counts as importing the submodule)."""
    import ast

    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("cos_jax"):
            subs = {f"{node.module}.{a.name}" for a in node.names} & modules
            out |= subs
            if node.module in modules and len(subs) < len(node.names):
                out.add(node.module)
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names} & modules
    return out - {module}


def test_no_import_cycles():
    """Modules import downwards only: no cycle, not even through imports inside functions."""
    from pathlib import Path

    root = Path(__file__).parents[1]
    files = {}
    for path in (root / "cos_jax").rglob("*.py"):
        name = ".".join(path.relative_to(root).with_suffix("").parts)
        files[name.removesuffix(".__init__")] = path
    graph = {m: _imports(m, p, set(files)) for m, p in files.items()}
    state: dict[str, int] = {}  # 1 on the current path, 2 done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for dep in sorted(graph[module]):
            if state.get(dep) == 1:
                cycle = [*path[path.index(dep) :], module, dep] if dep in path else [module, dep]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if dep not in state:
                visit(dep, [*path, module])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [])
