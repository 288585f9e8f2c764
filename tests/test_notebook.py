"""examples/notebook.ipynb, executed top to bottom by nbclient in an ipykernel of this
interpreter, in a temporary working directory, with its AWS cell planning against a moto server
on 127.0.0.1: every cell runs, nothing goes to stderr, no warning, and the outputs are the real
ones (a widget progress bar, HTML tables, images). Loads the real models: slow."""

from __future__ import annotations

import copy
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from llm_twin_sdk import AWSClients

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "examples" / "notebook.ipynb"
DATA = ROOT / "examples" / "data"


def _notebook() -> Any:
    import nbformat

    return nbformat.read(NOTEBOOK, as_version=4)  # type: ignore[no-untyped-call]  # unannotated


def _run(notebook: Any, cwd: Path, env: dict[str, str], timeout_s: int = 240) -> Any:
    """Execute ``notebook`` in a fresh kernel of this interpreter (its kernelspec written to a
    temporary folder, nothing installed globally), in ``cwd``, with ``env``."""
    import ipykernel.kernelspec
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient

    prefix = cwd / "kernel"
    ipykernel.kernelspec.install(kernel_name="llm-twin-test", prefix=str(prefix))
    specs = KernelSpecManager(kernel_dirs=[str(prefix / "share" / "jupyter" / "kernels")])
    assert Path(specs.get_kernel_spec("llm-twin-test").argv[0]) == Path(sys.executable)
    manager = KernelManager(kernel_name="llm-twin-test", kernel_spec_manager=specs)
    assert manager.ip == "127.0.0.1"  # the kernel's ports listen on loopback only
    client = NotebookClient(
        notebook,
        km=manager,
        timeout=timeout_s,
        resources={"metadata": {"path": str(cwd)}},
    )
    client.execute(env=env, cwd=str(cwd))
    return notebook


def _kernel_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, "TMPDIR": str(tmp_path / "tmp"), "PYTHONWARNINGS": "default", **extra}
    src = str(ROOT / "src")  # this checkout's SDK, as in the test process
    env["PYTHONPATH"] = os.pathsep.join([src, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    (tmp_path / "tmp").mkdir()
    return env


def _workdir(tmp_path: Path) -> Path:
    cwd = tmp_path / "work"
    shutil.copytree(DATA, cwd / "data")  # the notebook reads data/ next to it
    return cwd


def _texts(cell: Any) -> str:
    """Every text a cell showed: streams and each output's text/plain and text/html."""
    parts = []
    for output in cell.outputs:
        if output.output_type == "stream":
            parts.append(output.text)
        for key in ("text/plain", "text/html"):
            parts.append(str(output.get("data", {}).get(key, "")))
    return "\n".join(parts)


def _check_clean(notebook: Any) -> None:
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        assert cell.execution_count is not None, cell.source[:60]
        kinds = [output.output_type for output in cell.outputs]
        assert "error" not in kinds, cell.source[:60]
        streams = [o.name for o in cell.outputs if o.output_type == "stream"]
        assert "stderr" not in streams, (cell.source[:60], _texts(cell))
        text = _texts(cell)
        for noise in ("Warning", "warn(", "IProgress", "Loading weights", "Batches"):
            assert noise not in text, (noise, cell.source[:60], text[:500])


def _cell(notebook: Any, tag: str) -> Any:
    return next(c for c in notebook.cells if tag in c.metadata.get("tags", ()))


def _html(cell: Any) -> str:
    return "\n".join(o.data["text/html"] for o in cell.outputs if "text/html" in o.get("data", {}))


def _images(cell: Any) -> list[str]:
    return [o.data["image/png"] for o in cell.outputs if "image/png" in o.get("data", {})]


def test_the_committed_notebook_has_no_outputs() -> None:
    notebook = _notebook()
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert len(code) >= 9
    for cell in code:
        assert cell.outputs == [], cell.source[:60]
        assert cell.execution_count is None, cell.source[:60]
    raw = json.loads(NOTEBOOK.read_text(encoding="utf-8"))
    assert raw["nbformat"] == 4


def test_the_notebook_runs_clean_top_to_bottom(
    tmp_path: Path, moto_server: str, moto_aws: AWSClients
) -> None:
    cwd = _workdir(tmp_path)
    env = _kernel_env(tmp_path, AWS_ENDPOINT_URL=moto_server, AWS_EC2_METADATA_DISABLED="true")
    notebook = _run(_notebook(), cwd, env)
    _check_clean(notebook)

    ingest = _cell(notebook, "ingest")
    widgets = [o for o in ingest.outputs if "application/vnd.jupyter.widget-view+json" in o.data]
    assert len(widgets) == 1  # the progress bar, a widget; no model-loading bar
    assert "ingest" in widgets[0].data["text/plain"]
    assert "<td>24</td>" in _html(ingest)  # the IngestReport: 24 documents

    answer = _html(_cell(notebook, "ask"))
    assert "Answer: How can a SageMaker endpoint scale back up from zero copies?" in answer
    assert "<th>document</th>" in answer

    stream = [o.text for o in _cell(notebook, "stream").outputs if o.output_type == "stream"]
    assert stream[0].startswith("sources: ")
    assert len(stream) > 3  # the tokens arrived one by one

    table = _html(_cell(notebook, "sources"))
    assert "<table" in table
    for column in ("rank", "document_id", "title", "author", "platform", "kind", "url", "score"):
        assert f"<th>{column}</th>" in table
    assert "<th>text</th>" not in table

    assert len(_images(_cell(notebook, "timings"))) == 1
    assert len(_images(_cell(notebook, "evaluation-chart"))) == 1
    assert "recall@10" in _html(_cell(notebook, "evaluate"))

    plan = _cell(notebook, "plan")  # planned against moto: read-only calls only
    html = _html(plan)
    assert "What up() would do: llm-twin" in html
    assert "Deployment plan: endpoint llm-twin" in html
    assert "<td>create</td><td>endpoint</td>" in html
    assert "Cost estimate" in html
    assert "$1,105.95" in html  # one ml.g5.2xlarge a month, at the policy's minimum
    assert "Autoscaling plan: endpoint/llm-twin/variant/AllTraffic" in html
    assert "not reachable" not in _texts(plan)
    assert moto_aws.client("sagemaker").list_endpoints()["Endpoints"] == []

    # The data went to the notebook's temporary folder, which its last cell removed.
    assert list((tmp_path / "tmp").glob("llm-twin-notebook-*")) == []
    assert sorted(p.name for p in cwd.iterdir() if not p.name.startswith("kernel")) == ["data"]


def test_without_aws_the_plan_cell_shows_the_offline_cost_estimate(tmp_path: Path) -> None:
    notebook = _notebook()
    cells = [copy.deepcopy(_cell(notebook, "plan"))]
    notebook.cells = cells
    env = {k: v for k, v in _kernel_env(tmp_path).items() if not k.startswith("AWS_")}
    env |= {
        "AWS_EC2_METADATA_DISABLED": "true",  # no credential lookup leaves this machine
        "AWS_CONFIG_FILE": str(tmp_path / "no-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-credentials"),
    }
    _run(notebook, _workdir(tmp_path), env, timeout_s=60)
    _check_clean(notebook)
    cell = cells[0]
    assert "AWS is not reachable (AccessDeniedError)" in _texts(cell)
    html = _html(cell)
    assert html.startswith("<div><strong>Cost estimate</strong>")
    assert "$1.515" in html
    assert "$4,423.80" in html  # four instances, the policy's maximum
