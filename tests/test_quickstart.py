"""The README's first command runs this example: it must work offline, from scratch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_quickstart_runs_offline(tmp_path: Path) -> None:
    # A collection left by another embedding model (vectors of size 8) in the default folder:
    # the quickstart must notice, say so, and re-create it.
    from llm_twin_sdk import QdrantStore

    old = QdrantStore.local(tmp_path / ".llm-twin" / "qdrant")
    old.ensure_collection(8, "articles")
    old.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLM_TWIN_")}
    env |= {
        "XDG_DATA_HOME": str(tmp_path),
        "HF_HUB_OFFLINE": "1",
        "LLM_TWIN_GENERATION__MAX_NEW_TOKENS": "24",
    }
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "quickstart.py")],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "holds vectors of size 8" in out
    assert "Ingested 24 documents" in out
    assert out.count("Sources:") == 3
    assert "Streaming tokens with server-sent events" in out
    assert "retrieve" in out
    assert "generate" in out
    assert (tmp_path / ".llm-twin" / "qdrant").is_dir()  # the working directory's folder
    assert not (tmp_path / "llm-twin-sdk").exists()  # nothing in the per-user data folder
