"""What the command-line tests share: running ``llm-twin`` in-process (typer's CliRunner)
and as a subprocess (``python -m llm_twin_sdk``), and the example spec made moto-friendly."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from typer.testing import CliRunner, Result

from llm_twin_sdk.cli.app import app

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_SPEC = ROOT / "examples" / "twin.yaml"
ZERO_SPEC = ROOT / "examples" / "twin-scale-to-zero.yaml"
SRC = ROOT / "src"


def run(*args: str, obj: Any = None, env: Mapping[str, str] | None = None) -> Result:
    """``llm-twin ARGS`` in this process; wide output so tables do not wrap."""
    return CliRunner().invoke(app, list(args), obj=obj, env={"COLUMNS": "200", **(env or {})})


def run_process(
    *args: str, env: Mapping[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``python -m llm_twin_sdk ARGS`` in a new process (this checkout's sources first)."""
    return subprocess.run(
        [sys.executable, "-m", "llm_twin_sdk", *args],
        capture_output=True,
        text=True,
        env=process_env(env),
        timeout=timeout,
        check=False,
    )


def process_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a subprocess: this one's, sources first, wide, ``extra`` on top."""
    path = os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, "COLUMNS": "200", **(extra or {})}


def moto_spec(folder: Path, name: str = "llm-twin", *, schedule: bool = True) -> Path:
    """examples/twin.yaml with an instance type moto accepts (it rejects ml.g5.*);
    ``schedule=False``: without its scheduled policy (target tracking alone)."""
    text = EXAMPLE_SPEC.read_text(encoding="utf-8")
    if not schedule:
        text = text.split("  - kind: scheduled")[0]
    text = text.replace("ml.g5.2xlarge", "ml.g4dn.xlarge").replace(
        "name: llm-twin", f"name: {name}"
    )
    spec = folder / f"{name}{'' if schedule else '-tracking'}.yaml"
    spec.write_text(text, encoding="utf-8")
    return spec
