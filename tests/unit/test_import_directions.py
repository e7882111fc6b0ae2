"""Dependencies point one way: a checker over every module's imports, and the rules.

Owns: reading the imports (top level and inside functions, with `ast`) of every module
under daemon/, client/, shims/ and of protos/pallet/v1/errors.py, named by their
installed names (pyproject.toml's package-dir), and failing on a forbidden direction, an
import cycle, or a `model.py` that imports its own package. Must not: import the code it
checks (it reads files only).

The rules (DESIGN.md, "Dependencies point one way"):

* the shim imports nothing of the daemon or the client (it outlives palletd, stays small);
* the shim's API (`pallet.shim.api`) stands alone: nothing else of `pallet.shim`;
* clients import only `pallet.v1` and their own code: nothing of the daemon or the shim;
* the error tree `pallet.v1.errors` imports nothing of pallet (every side uses it);
* the shim and the error tree use only the standard library and protobuf, and nothing the
  shim's process imports (from `pallet.shim.main` on) pulls in asyncio or grpc: the shim
  forks, and grpc's threads do not survive a fork;
* the daemon uses only the shim's API, never the shim's insides;
* the domain (containers/, images/, ...) never imports `api/`, `*_pb2` or grpc;
* no import cycle among modules (imports run at import time: top level, not in functions);
* a `model.py` imports nothing else of its own package (everything there imports it).

A violation reads "module -> import (rule)".
"""

from __future__ import annotations

import ast
import sys
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

#: Packages whose modules are checked, and single modules (the error tree lives among
#: generated code, which is not checked).
CHECKED_PACKAGES = ("pallet.daemon", "pallet.client", "pallet.shim")
CHECKED_MODULES = ("pallet.v1.errors",)

#: The daemon's domain: packages (and top-level modules) that speak dataclasses, never
#: protobuf or gRPC. Only the composition root (app, main) and api/ may.
DOMAIN = tuple(
    f"pallet.daemon.{name}"
    for name in (
        "containers", "images", "events", "snapshots", "store", "shims",
        "networks", "volumes", "builder",  # not written yet: the rule is waiting for them
        "system", "config", "faults",
    )
)

#: Where the shim's process starts: everything it imports must be fork-safe and small.
SHIM_ENTRY = "pallet.shim.main"
#: What the shim and the error tree may import besides the standard library and pallet.
SHIM_THIRD_PARTY = ("google.protobuf",)
#: What nothing in the shim's process may import.
FORK_UNSAFE = ("asyncio", "grpc")

#: Violations tolerated for a while: "module -> import (rule)" -> who is removing it.
#: Empty: every rule holds. An entry whose violation is gone fails the test, so the list
#: only shrinks.
ALLOWED: dict[str, str] = {}


@dataclass(frozen=True, slots=True)
class Import:
    target: str  # the module imported, by installed name
    top_level: bool  # runs at import time (not inside a function)


def installed_modules(repo: Path) -> dict[str, Path]:
    """Every module of the repository's packages by installed name (`pallet.shim.wire`),
    from pyproject.toml's [tool.setuptools.package-dir]."""
    pyproject = tomllib.loads((repo / "pyproject.toml").read_text())
    package_dir: Mapping[str, str] = pyproject["tool"]["setuptools"]["package-dir"]
    modules: dict[str, Path] = {}
    for package, directory in package_dir.items():
        root = repo / directory
        for path in sorted(root.rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join([package, *parts])] = path
    return modules


def _is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def imports_of(name: str, path: Path, known: Iterable[str]) -> list[Import]:
    """What module `name` (the file at `path`) imports: `from a import b` is `a.b` when
    that is a module, else `a`; relative imports are resolved."""
    known_set = set(known)
    tree = ast.parse(path.read_text(), str(path))
    package = name if _is_package(path) else name.rpartition(".")[0]
    found: list[Import] = []

    def visit(node: ast.AST, top_level: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = top_level and not isinstance(
                child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)
            )
            if isinstance(child, ast.Import):
                found.extend(Import(alias.name, top_level) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = package.split(".")
                    anchor = anchor[: len(anchor) - (child.level - 1)]
                    base = ".".join(anchor + ([base] if base else []))
                for alias in child.names:
                    sub = f"{base}.{alias.name}"
                    found.append(Import(sub if sub in known_set else base, top_level))
            visit(child, inner)

    visit(tree, True)
    return found


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def _is_grpc(name: str) -> bool:
    root = name.split(".")[0]
    last = name.rpartition(".")[2]
    return root == "grpc" or root.startswith("grpc_") or last.endswith(("_pb2", "_pb2_grpc"))


def _model_package(name: str) -> str | None:
    package, _, last = name.rpartition(".")
    return package if last == "model" else None


def direction_rule(module: str, target: str) -> str | None:
    """The rule `module` importing `target` breaks, or None."""
    if _within(module, "pallet.shim"):
        if _within(target, "pallet.daemon") or _within(target, "pallet.client"):
            return "the shim imports nothing of the daemon or the client"
        if (
            _within(module, "pallet.shim.api")
            and _within(target, "pallet.shim")
            and not _within(target, "pallet.shim.api")
        ):
            return "pallet.shim.api stands alone: nothing else of pallet.shim"
    if _within(module, "pallet.client") and (
        _within(target, "pallet.daemon") or _within(target, "pallet.shim")
    ):
        return "clients import only pallet.v1 and their own code"
    if module == "pallet.v1.errors" and _within(target, "pallet"):
        return "pallet.v1.errors imports nothing of pallet"
    if (_within(module, "pallet.shim") or module == "pallet.v1.errors") and not (
        _within(target, "pallet")
        or target.split(".")[0] in sys.stdlib_module_names
        or any(_within(target, allowed) for allowed in SHIM_THIRD_PARTY)
    ):
        return "the shim and the error tree use only the standard library and protobuf"
    if (
        _within(module, "pallet.daemon")
        and _within(target, "pallet.shim")
        and not _within(target, "pallet.shim.api")
    ):
        return "the daemon uses only the shim's API, pallet.shim.api"
    if any(_within(module, d) for d in DOMAIN) and (
        _within(target, "pallet.daemon.api") or _is_grpc(target)
    ):
        return "the domain never imports pallet.daemon.api, *_pb2 or grpc"
    model_package = _model_package(module)
    if model_package and _within(target, model_package) and target != module:
        return f"a model imports nothing else of its package ({model_package})"
    return None


def _cycles(graph: Mapping[str, set[str]]) -> Iterator[list[str]]:
    """One cycle (a, b, ..., a) through each strongly connected component (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(component)

    for v in sorted(graph):
        if v not in index:
            connect(v)
    for component in components:
        start = min(component)
        path, seen = [start], {start}
        while True:  # walk inside the component until a module repeats
            step = min(w for w in graph[path[-1]] if w in component)
            if step in seen:
                yield path[path.index(step):] + [step]
                break
            path.append(step)
            seen.add(step)


def violations(repo: Path) -> list[str]:
    """Every broken rule in the repository at `repo`, as "module -> import (rule)"."""
    modules = installed_modules(repo)
    checked = {
        name: path
        for name, path in modules.items()
        if name in CHECKED_MODULES or any(_within(name, p) for p in CHECKED_PACKAGES)
    }
    found: list[str] = []
    graph: dict[str, set[str]] = {name: set() for name in checked}
    for name, path in sorted(checked.items()):
        for imp in imports_of(name, path, modules):
            rule = direction_rule(name, imp.target)
            if rule:
                found.append(f"{name} -> {imp.target} ({rule})")
            if imp.top_level and imp.target in checked and imp.target != name:
                graph[name].add(imp.target)
    for cycle in _cycles(graph):
        found.append(f"{cycle[0]} -> {cycle[1]} (import cycle: {' -> '.join(cycle)})")
    found.extend(_fork_unsafe_in_the_shim(checked, modules))
    return sorted(set(found))


def _fork_unsafe_in_the_shim(checked: Mapping[str, Path], modules: Mapping[str, Path]) -> list[str]:
    """Every asyncio or grpc import reachable from the shim's entry point (inside
    functions too: the shim runs them)."""
    if SHIM_ENTRY not in checked:
        return []
    found: list[str] = []
    seen: set[str] = set()
    todo = [SHIM_ENTRY]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for imp in imports_of(name, checked[name], modules):
            if any(_within(imp.target, bad) or imp.target.startswith(bad + "_") for bad in FORK_UNSAFE):
                found.append(
                    f"{name} -> {imp.target} (the shim's process imports no asyncio or grpc)"
                )
            # Importing a module runs it and every package __init__ above it.
            name_and_parents = imp.target
            while name_and_parents:
                if name_and_parents in checked:
                    todo.append(name_and_parents)
                name_and_parents = name_and_parents.rpartition(".")[0]
    return found


# --- the repository -----------------------------------------------------------------------


def test_dependencies_point_one_way() -> None:
    found = violations(REPO)
    new = [v for v in found if v not in ALLOWED]
    assert not new, "forbidden imports:\n  " + "\n  ".join(new)
    fixed = [f"{v}  [{who}]" for v, who in ALLOWED.items() if v not in found]
    assert not fixed, "allowed violations that are gone; remove them from ALLOWED:\n  " + "\n  ".join(fixed)


def test_the_checker_sees_the_whole_tree() -> None:
    # A mapping that found nothing would make the test above pass vacuously.
    modules = installed_modules(REPO)
    for name in (
        "pallet.daemon.app",
        "pallet.daemon.images.model",
        "pallet.client.cli",
        "pallet.shim.main",
        "pallet.shim.api.spec",
        "pallet.v1.errors",
    ):
        assert name in modules, name
    imported = {i.target for i in imports_of("pallet.daemon.app", modules["pallet.daemon.app"], modules)}
    assert "pallet.daemon.containers.manager" in imported


# --- the checker, on a planted tree -------------------------------------------------------


def _plant(root: Path, files: Mapping[str, str]) -> Path:
    (root / "pyproject.toml").write_text(
        '[tool.setuptools.package-dir]\n'
        '"pallet.daemon" = "daemon"\n"pallet.client" = "client"\n'
        '"pallet.shim" = "shims"\n"pallet.v1" = "protos/pallet/v1"\n'
    )
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


CLEAN_TREE = {
    "daemon/__init__.py": "",
    "daemon/app.py": "from pallet.daemon.api import server\nfrom pallet.daemon.images import manager\n",
    "daemon/api/__init__.py": "",
    "daemon/api/server.py": "import grpc\nfrom pallet.v1 import images_pb2\nfrom pallet.daemon.images.model import Image\n",
    "daemon/images/__init__.py": "",
    "daemon/images/model.py": "from dataclasses import dataclass\nfrom pallet.v1.errors import NotFound\n",
    "daemon/images/manager.py": "from . import model\nfrom pallet.shim.api import spec\n",
    "client/__init__.py": "",
    "client/cli.py": "from pallet.v1 import errors\nfrom pallet.client import api\n",
    "client/api.py": "import grpc\n",
    "shims/__init__.py": "",
    "shims/main.py": "from pallet.shim.api import spec\nfrom pallet.shim import server\n",
    "shims/server.py": "from pallet.shim.api.spec import ShimSpec\n",
    "shims/api/__init__.py": "",
    "shims/api/spec.py": "from pallet.v1.errors import InvalidArgument\nfrom pallet.shim.api import wire\n",
    "shims/api/wire.py": "import json\nfrom google.protobuf import message\n",
    "shims/api/logs.py": "import asyncio\n",  # the daemon's reader: the shim never imports it
    "protos/pallet/v1/__init__.py": "",
    "protos/pallet/v1/errors.py": "import enum\n",
    "protos/pallet/v1/images_pb2.py": "from pallet.daemon import app\n",  # generated: not checked
}


def test_a_clean_tree_passes(tmp_path: Path) -> None:
    assert violations(_plant(tmp_path, CLEAN_TREE)) == []


@pytest.mark.parametrize(
    ("path", "text", "expected"),
    [
        ("shims/server.py", "from pallet.daemon.images import model\n",
         "pallet.shim.server -> pallet.daemon.images.model (the shim imports nothing of the daemon or the client)"),
        ("shims/server.py", "def f():\n    import pallet.client.cli\n",
         "pallet.shim.server -> pallet.client.cli (the shim imports nothing of the daemon or the client)"),
        ("shims/api/wire.py", "from pallet.shim import server\n",
         "pallet.shim.api.wire -> pallet.shim.server (pallet.shim.api stands alone: nothing else of pallet.shim)"),
        ("client/api.py", "from pallet.daemon.images.model import Image\n",
         "pallet.client.api -> pallet.daemon.images.model (clients import only pallet.v1 and their own code)"),
        ("client/api.py", "from pallet.shim.api import spec\n",
         "pallet.client.api -> pallet.shim.api.spec (clients import only pallet.v1 and their own code)"),
        ("protos/pallet/v1/errors.py", "from pallet.shim.api import wire\n",
         "pallet.v1.errors -> pallet.shim.api.wire (pallet.v1.errors imports nothing of pallet)"),
        ("daemon/images/manager.py", "from pallet.shim import server\n",
         "pallet.daemon.images.manager -> pallet.shim.server (the daemon uses only the shim's API, pallet.shim.api)"),
        ("daemon/images/manager.py", "from pallet.daemon.api import server\n",
         "pallet.daemon.images.manager -> pallet.daemon.api.server (the domain never imports pallet.daemon.api, *_pb2 or grpc)"),
        ("daemon/images/manager.py", "from ..api import server\n",  # relative
         "pallet.daemon.images.manager -> pallet.daemon.api.server (the domain never imports pallet.daemon.api, *_pb2 or grpc)"),
        ("daemon/images/manager.py", "def f():\n    from pallet.v1 import images_pb2\n",
         "pallet.daemon.images.manager -> pallet.v1.images_pb2 (the domain never imports pallet.daemon.api, *_pb2 or grpc)"),
        ("protos/pallet/v1/errors.py", "import grpc\n",
         "pallet.v1.errors -> grpc (the shim and the error tree use only the standard library and protobuf)"),
        ("shims/server.py", "import structlog\n",
         "pallet.shim.server -> structlog (the shim and the error tree use only the standard library and protobuf)"),
        ("shims/server.py", "def f():\n    from pallet.shim.api import logs\n",
         "pallet.shim.api.logs -> asyncio (the shim's process imports no asyncio or grpc)"),
        ("daemon/system.py", "from pallet.v1 import images_pb2\n",
         "pallet.daemon.system -> pallet.v1.images_pb2 (the domain never imports pallet.daemon.api, *_pb2 or grpc)"),
        ("daemon/networks/model.py", "import grpc.aio\n",
         "pallet.daemon.networks.model -> grpc.aio (the domain never imports pallet.daemon.api, *_pb2 or grpc)"),
        ("daemon/images/model.py",
         "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pallet.daemon.images.manager import X\n",
         "pallet.daemon.images.model -> pallet.daemon.images.manager (a model imports nothing else of its package (pallet.daemon.images))"),
    ],
)
def test_the_checker_catches_a_planted_violation(
    tmp_path: Path, path: str, text: str, expected: str
) -> None:
    tree = dict(CLEAN_TREE)
    tree[path] = tree.get(path, "") + text
    tree.setdefault("daemon/networks/__init__.py", "")
    assert expected in violations(_plant(tmp_path, tree))


def test_the_checker_catches_a_planted_cycle(tmp_path: Path) -> None:
    tree = dict(CLEAN_TREE)
    tree["shims/server.py"] += "from pallet.shim import main\n"  # main imports server
    tree["client/api.py"] += "def later():\n    from pallet.client import cli\n"  # not at import time
    assert violations(_plant(tmp_path, tree)) == [
        "pallet.shim.main -> pallet.shim.server (import cycle: pallet.shim.main -> pallet.shim.server -> pallet.shim.main)"
    ]
