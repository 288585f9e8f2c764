"""The ``llm-twin`` command line, built on the SDK's public API (docs/cli.md)::

    llm-twin plan examples/twin.yaml          # what `up` would change, and what it costs
    llm-twin up examples/twin.yaml            # deploy, wait, autoscale
    llm-twin ingest examples/data/corpus.jsonl
    llm-twin ask "How do I cut GPU cost?"
    llm-twin eval examples/data/queries.jsonl --k 5 --k 10

Also ``python -m llm_twin_sdk``. Modules: :mod:`.app` (the commands, errors and Ctrl-C),
:mod:`.aws_side` (plan, up, status, scale, down, list), :mod:`.data_side` (ingest, ask,
eval), :mod:`.specfile` (the YAML spec), :mod:`.render` (tables), :mod:`.output` (consoles,
JSON, exit codes).
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> None:
    """Run the command line on ``argv`` (default: ``sys.argv[1:]``); exits the process with
    the command's exit code (docs/cli.md, "Exit codes")."""
    import os

    # A command line prints its own progress: no bars from the model libraries' loaders.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    from .app import app

    app(args=None if argv is None else list(argv), prog_name="llm-twin")
