"""Imports run one way between the layers (DESIGN.md, "The layers").

The source is read with ``ast``: module-level and function-level imports both count, and a
relative import is resolved to the absolute name it stands for.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: the repository folders that pyproject.toml maps under the ``mechgym`` package
PACKAGE_DIRS = {
    "envs": "mechgym.envs",
    "agents": "mechgym.agents",
    "training": "mechgym.training",
    "mechgym": "mechgym",
}


def module_name(path: Path) -> str:
    """The dotted module name of a source file of the repository."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    top = PACKAGE_DIRS[parts[0]]
    rest = parts[1:]
    if rest and rest[-1] == "__init__":
        rest = rest[:-1]
    return ".".join([top, *rest])


def imported_names(path: Path, module: str | None = None) -> list[tuple[int, str]]:
    """Every module name a file imports, anywhere in it, with the line: for ``from a import
    b`` both ``a`` and ``a.b`` (``b`` may be a submodule). ``module``: the file's dotted
    name, if it is not a file of the repository."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = (module or module_name(path)).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.append((node.lineno, mod))
            out += [(node.lineno, f"{mod}.{a.name}") for a in node.names]
    return out


def within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def sources(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


#: (folder whose modules are checked, the package they must not import)
RULES = [
    ("envs/model", "mechgym.envs.engine"),
    ("envs/solvers", "mechgym.envs.engine"),
    ("envs", "mechgym.agents"),
    ("envs", "mechgym.training"),
    ("envs", "mechgym.integrations"),
]

#: the known exceptions, each (file, imported module) with why it stays
EXCEPTIONS = {
    # the typed errors are raised by every layer; errors.py imports nothing of mechgym (see
    # test_errors_module_is_a_leaf) and stays under engine/ because 100+ files and users
    # import it from there
    **{
        (f"envs/{layer}/{name}.py", "mechgym.envs.engine.errors"): "typed errors"
        for layer, names in {
            "model": [
                "batched_generators",
                "bundles",
                "context",
                "contextfile",
                "examples",
                "family",
                "generators",
                "limits",
                "market",
                "states",
            ],
            "solvers": ["batched", "packing", "spe"],
        }.items()
        for name in names
    },
    # the subgame-perfect solver solves the engine's extensive-form games: its input is the
    # engine's Mechanism and its nodes, not the model
    ("envs/solvers/spe.py", "mechgym.envs.engine.game"): "solves the engine's game tree",
    # the 'menu' action encoding is built from the predicted agents' offers (function-level
    # import, only when that encoding is asked for)
    ("envs/pettingzoo/aec.py", "mechgym.agents.menus"): "the menu encoding",
    # imported only when TorchRL is already loaded, to register its flat masks
    ("envs/pettingzoo/aec.py", "mechgym.integrations.torchrl"): "TorchRL's masks",
    # the registry's load_agents() imports the mechanism's agents module on request
    ("envs/pettingzoo/registry.py", "mechgym.agents.base"): "load_agents()",
}


def violations() -> list[tuple[str, int, str]]:
    found = []
    for folder, banned in RULES:
        for path in sources(folder):
            rel = path.relative_to(ROOT).as_posix()
            for line, name in imported_names(path):
                if within(name, banned):
                    found.append((rel, line, name))
    return found


def excepted(rel: str, name: str) -> bool:
    return any(rel == f and within(name, mod) for f, mod in EXCEPTIONS)


def test_layer_rules_hold() -> None:
    bad = sorted({v for v in violations() if not excepted(v[0], v[2])})
    assert bad == [], "imports against the layer rules (file, line, module):\n" + "\n".join(
        f"{f}:{line} {name}" for f, line, name in bad
    )


def test_every_exception_is_still_needed() -> None:
    # an exception the code no longer needs would let that import back in unnoticed
    used = {
        (f, mod)
        for f, mod in EXCEPTIONS
        if any(rel == f and within(name, mod) for rel, _, name in violations())
    }
    assert set(EXCEPTIONS) - used == set()


def test_errors_module_is_a_leaf() -> None:
    names = [n for _, n in imported_names(ROOT / "envs/engine/errors.py")]
    assert not [n for n in names if within(n, "mechgym")]


def test_the_scan_sees_function_level_and_relative_imports(tmp_path: Path) -> None:
    # the scan itself: a function-level and a relative import of a banned package are found
    path = tmp_path / "probe.py"
    path.write_text(
        "def f():\n    import mechgym.envs.engine.game\n\nfrom ..engine import spaces\n"
    )
    names = [n for _, n in imported_names(path, "mechgym.envs.model.probe")]
    assert "mechgym.envs.engine.game" in names
    assert "mechgym.envs.engine.spaces" in names


@pytest.mark.parametrize("module", ["mechgym.benchmark.commands", "mechgym.training.commands"])
def test_command_groups_do_not_import_the_cli(module: str) -> None:
    # the CLI mounts the command groups; they share its helpers through mechgym.cli_support
    code = f"import sys, {module}; print('mechgym.cli' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize(
    "path", ["mechgym/benchmark/commands.py", "training/commands.py", "mechgym/cli_support.py"]
)
def test_command_sources_do_not_name_the_cli(path: str) -> None:
    # also function-level imports, which the subprocess check above would not run
    names = [n for _, n in imported_names(ROOT / path)]
    assert not [n for n in names if within(n, "mechgym.cli")]
