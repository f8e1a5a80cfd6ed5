"""The package's shape: a torch-free core, layers that run one way (import-linter), no import cycles."""

import subprocess
import sys
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("eftnas_deploy", "exporters", "latency_lut")
HEAVY = ("torch", "transformers", "optimum", "onnx", "onnxruntime", "openvino", "nncf", "datasets")


def _core_modules() -> list[str]:
    core = ROOT / "eftnas_deploy" / "core"
    return ["eftnas_deploy.core"] + [
        f"eftnas_deploy.core.{p.stem}" for p in sorted(core.glob("*.py")) if p.stem != "__init__"
    ]


def test_core_imports_no_torch_or_transformers():
    code = (
        "import sys\n"
        + "".join(f"import {m}\n" for m in _core_modules())
        + f"heavy = sorted(m for m in {HEAVY!r} if m in sys.modules)\n"
        + "assert not heavy, heavy\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]


def test_package_root_is_lazy():
    code = "import sys, eftnas_deploy; assert 'torch' not in sys.modules; eftnas_deploy.SubnetConfig; print('ok')"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = 0
    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    out.append(sorted(component))
    return out


def test_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles_among_modules():
    graph = grimp.build_graph(*PACKAGES)
    edges = {m: set(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
    # A package's __init__ re-exporting its own submodules is not a cycle between modules of different purpose.
    for module, imported in edges.items():
        edges[module] = {i for i in imported if not module.startswith(i + ".")}
    assert _cycles(edges) == []


@pytest.mark.parametrize("tool", ["lint-imports"])
def test_layer_contracts_hold(tool):
    exe = Path(sys.executable).with_name(tool)
    result = subprocess.run([str(exe)], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:]


def test_cli_help_loads_no_torch_and_lists_every_command():
    code = (
        "import sys\n"
        "from eftnas_deploy.app.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        f"heavy = sorted(m for m in {HEAVY!r} if m in sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert all(f"    {name}" in result.stdout for name in ("demo", "run", "lut", "export", "benchmark"))


def test_the_lazy_command_table_matches_the_command_modules():
    import argparse

    from eftnas_deploy.app.cli import ALL, COMMANDS, build_parser

    def helps(parser: argparse.ArgumentParser) -> dict[str, str]:
        action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        return {choice.dest: choice.help for choice in action._choices_actions}

    full = helps(build_parser(ALL))
    assert full == {name: text for name, (_, text) in COMMANDS.items()}
    assert helps(build_parser(None)) == full
