"""``python -m llm_twin_sdk``: the ``llm-twin`` command line (docs/cli.md)."""

from __future__ import annotations

from .cli import main

if __name__ == "__main__":
    main()
