"""The package face: `import llm_twin_sdk` stays light, its public names come from one map,
the version is written once, and no import runs back up the layers."""

from __future__ import annotations

import ast
import importlib.metadata
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import llm_twin_sdk

PACKAGE = Path(llm_twin_sdk.__file__).parent
ROOT = Path(__file__).resolve().parent.parent

HEAVY = (
    "torch",
    "sentence_transformers",
    "llama_cpp",
    "sagemaker",
    "transformers",
    "qdrant_client",
    "pydantic_settings",
    "boto3",
    "httpx",
    "numpy",
)


def test_import_loads_errors_and_version_only() -> None:
    code = "import sys, llm_twin_sdk\nprint(' '.join(sorted(sys.modules)))"
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert [m for m in HEAVY if m in loaded] == []
    assert [m for m in loaded if m.startswith("llm_twin_sdk")] == [
        "llm_twin_sdk",
        "llm_twin_sdk._version",
        "llm_twin_sdk.errors",
    ]


@pytest.mark.parametrize("name", list(llm_twin_sdk._LAZY))
def test_public_name_resolves(name: str) -> None:
    value = getattr(llm_twin_sdk, name)
    module = importlib.import_module(llm_twin_sdk._LAZY[name], "llm_twin_sdk")
    assert value is getattr(module, name)


def test_unknown_name_raises_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = llm_twin_sdk.Nope


def test_dir_comes_from_the_lazy_map() -> None:
    assert set(dir(llm_twin_sdk)) == set(llm_twin_sdk._LAZY)
    assert {*vars(llm_twin_sdk.errors)["__all__"], "__version__"} <= set(llm_twin_sdk._LAZY)
    # no __all__ on purpose: pydoc documents every class it names (tests/test_help.py)
    assert not hasattr(llm_twin_sdk, "__all__")


def _face() -> tuple[list[ast.stmt], dict[str, str]]:
    """The statements ``__init__.py`` runs at import, and its TYPE_CHECKING imports as
    ``{name: ".module"}``; every one of those must re-export its name as itself."""
    tree = ast.parse((PACKAGE / "__init__.py").read_text(encoding="utf-8"))
    typing_imports: dict[str, str] = {}
    runtime: list[ast.stmt] = []
    for node in tree.body:
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            for imp in node.body:
                assert isinstance(imp, ast.ImportFrom), ast.unparse(imp)
                for alias in imp.names:
                    assert alias.asname == alias.name, f"write `{alias.name} as {alias.name}`"
                    typing_imports[alias.name] = "." * imp.level + (imp.module or "")
        else:
            runtime.append(node)
    return runtime, typing_imports


def test_typing_imports_match_the_lazy_map() -> None:
    _, typing_imports = _face()
    eager = {".errors", "._version"}
    lazy = {name: module for name, module in llm_twin_sdk._LAZY.items() if module not in eager}
    assert typing_imports == lazy


def test_only_errors_and_version_are_imported_eagerly() -> None:
    runtime, _ = _face()
    imports = {
        ast.unparse(node) for node in runtime if isinstance(node, (ast.Import, ast.ImportFrom))
    }
    assert imports == {
        "from __future__ import annotations",
        "import importlib",
        "from typing import TYPE_CHECKING, Any",
        "from . import errors",
        "from ._version import __version__ as __version__",
        "from .errors import *",
    }


def test_version_is_written_once() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "version" not in project["project"]
    assert project["project"]["dynamic"] == ["version"]
    version_file = ROOT / project["tool"]["hatch"]["version"]["path"]
    assert version_file.resolve() == (PACKAGE / "_version.py").resolve()
    assert importlib.metadata.version("llm-twin-sdk") == llm_twin_sdk.__version__


# -- layers: every import runs down (or stays inside its own layer) ---------------------------

LAYERS: tuple[frozenset[str], ...] = (
    frozenset({"errors", "_version", "redaction", "ownership", "display"}),
    frozenset(
        {
            "types",
            "validation",
            "config",
            "retry",
            "aws",
            "offline_models",
            "extras",
            "collection_routing",
            "qdrant_cluster",
            "lexical_languages",
            "endpoint",
        }
    ),
    frozenset({"inference"}),
    frozenset({"rag", "scaling"}),
    frozenset({"deploy"}),
    frozenset({"twin", "async_twin"}),
    frozenset({"deployment"}),
    frozenset({"cli", "__main__"}),
)


MODULES = {
    ".".join(["llm_twin_sdk", *p.relative_to(PACKAGE).with_suffix("").parts]).removesuffix(
        ".__init__"
    ): p
    for p in sorted(PACKAGE.rglob("*.py"))
}


def _layer(module: str) -> int:
    """The layer of ``llm_twin_sdk.<part>...`` by its part; the face is above them all."""
    if module == "llm_twin_sdk":
        return len(LAYERS)
    part = module.split(".")[1]
    for index, parts in enumerate(LAYERS):
        if part in parts:
            return index
    raise AssertionError(f"{module}: place {part!r} in one of LAYERS")


def _upward_imports(module: str, source: str) -> list[str]:
    """The imports of ``module`` that reach a higher layer, wherever they stand (top level,
    in a function, in a TYPE_CHECKING block)."""
    is_package = module in MODULES and MODULES[module].name == "__init__.py"
    package = module.split(".") if is_package else module.split(".")[:-1]
    targets: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            target = ".".join([*base, *filter(None, [node.module])])
            for alias in node.names:  # `from . import errors` imports a module
                sub = f"{target}.{alias.name}"
                targets.add(sub if sub in MODULES else target)
        elif isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
    return sorted(
        f"{module} -> {target}"
        for target in targets
        if target.split(".")[0] == "llm_twin_sdk" and _layer(target) > _layer(module)
    )


def test_no_import_runs_back_up_the_layers() -> None:
    upward = [
        line
        for module, path in MODULES.items()
        if module != "llm_twin_sdk"  # the face: only errors and _version at run time (above)
        for line in _upward_imports(module, path.read_text(encoding="utf-8"))
    ]
    assert upward == []


@pytest.mark.parametrize(
    ("module", "source", "upward"),
    [
        ("llm_twin_sdk.config", "def f():\n    from .rag.layout import x\n", "rag.layout"),
        ("llm_twin_sdk.inference.backends.http", "from ... import __version__", ""),
        ("llm_twin_sdk.rag.store", "from ..twin import LLMTwin", "twin"),
        ("llm_twin_sdk.types", "import llm_twin_sdk.inference.client", "inference.client"),
        ("llm_twin_sdk.deploy.spec", "from .. import errors", None),
        ("llm_twin_sdk.scaling.policies", "from ..deploy import spec", "deploy.spec"),
        ("llm_twin_sdk.deploy.teardown", "from ..scaling import AutoScaler", None),
    ],
)
def test_the_layer_check_catches_upward_imports(
    module: str, source: str, upward: str | None
) -> None:
    expected = [] if upward is None else [f"{module} -> llm_twin_sdk{'.' * bool(upward)}{upward}"]
    assert _upward_imports(module, source) == expected
