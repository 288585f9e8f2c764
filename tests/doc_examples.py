"""The Python examples of README.md and docs/**/*.md, read as the doc-examples test runs them.

A page says where its examples run with an HTML comment (invisible when rendered)::

    <!-- examples: embedded aws -->

naming one or more of :data:`ENVIRONMENTS`. A block that cannot run says why, right before it::

    <!-- not runnable: needs GPU quota in a real AWS account -->

Every other ```python block runs, the page's blocks in order in one namespace (a reader going
down the page). A ``# -> text`` line is output the block prints: the run checks each one, in
order. Interactive ``>>>`` sessions are refused (write ``print(...)`` and ``# ->``).

Example::

    page = read_page(Path("docs/deployment.md"))
    for block in page.blocks:
        print(block.line, block.not_runnable or "runs")
"""

from __future__ import annotations

import ast
import io
import re
from collections.abc import Iterator
from contextlib import redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "ENVIRONMENTS",
    "Block",
    "ExampleError",
    "Page",
    "example_pages",
    "read_page",
    "run_block",
]

ENVIRONMENTS = {
    "plain": "nothing started: only what the block itself builds (no model, no server)",
    "embedded": "the embedded footing's real models in-process (llama.cpp SmolLM2, MiniLM)",
    "aws": "every AWS service on a moto server, SageMaker runtime on the wire server",
    "server": "a llama.cpp server and a Qdrant-like server, named by LLM_TWIN_HTTP_URL and "
    "LLM_TWIN_QDRANT_URL",
}
"""What a page may name in ``<!-- examples: ... -->``."""

SLOW_ENVIRONMENTS = frozenset({"embedded", "server"})
"""Environments that load a real model (in-process or in a model server)."""

_ENVIRONMENT = re.compile(r"<!--\s*examples:(?P<names>[^>]*?)-->")
_NOT_RUNNABLE = re.compile(r"<!--\s*not runnable\b(?P<rest>.*?)-->", re.DOTALL)
_OUTPUT = re.compile(r"^\s*# -> ?(?P<text>.*)$")
_CONTAINERS = ("bullet_list_open", "ordered_list_open", "list_item_open", "blockquote_open")


class ExampleError(AssertionError):
    """A page's examples are mis-marked, or a block failed or printed something else."""


@dataclass(frozen=True)
class Block:
    """One ```python block: its first code line in the page, its code, and why it cannot run
    (``None``: it runs)."""

    page: Path
    line: int
    code: str
    not_runnable: str | None = None

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"

    @property
    def expected_output(self) -> list[str]:
        """The ``# ->`` lines: what the block prints, in order."""
        return [m["text"] for line in self.code.splitlines() if (m := _OUTPUT.match(line))]


@dataclass(frozen=True)
class Page:
    """A Markdown page's environments and Python blocks, in page order."""

    path: Path
    environments: tuple[str, ...]
    blocks: tuple[Block, ...]

    @property
    def slow(self) -> bool:
        return bool(SLOW_ENVIRONMENTS.intersection(self.environments))


def example_pages(root: Path) -> list[Path]:
    """README.md and every Markdown page under docs/ (recursively) that holds a python block."""
    candidates = [root / "README.md", *sorted((root / "docs").rglob("*.md"))]
    return [path for path in candidates if read_page(path, root).blocks]


def _tokens(text: str) -> list[Any]:
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark").parse(text)


def read_page(path: Path, root: Path | None = None) -> Page:
    """The page's blocks and environments; mis-marking raises :class:`ExampleError`: a
    ``not runnable`` without a reason or not followed by a python block, an unknown or missing
    environment, a ``>>>`` session."""
    shown = path.relative_to(root) if root else path
    text = path.read_text(encoding="utf-8")
    blocks: list[Block] = []
    environments: list[str] = []
    pending: tuple[int, str] | None = None  # a `not runnable` marker waiting for its block
    for token in _tokens(text):
        if token.type in _CONTAINERS:
            continue  # a marker before a list item still stands right before the block in it
        line = token.map[0] + 1 if token.map else 0
        if token.type == "html_block":
            for match in _ENVIRONMENT.finditer(token.content):
                environments.extend(match["names"].split())
            if marker := _NOT_RUNNABLE.search(token.content):
                reason = marker["rest"].strip().removeprefix(":").strip()
                if not marker["rest"].strip().startswith(":") or not reason:
                    raise ExampleError(f"{shown}:{line}: say why: <!-- not runnable: reason -->")
                pending = (line, reason)
                continue
        is_python = token.type == "fence" and token.info.split()[:1] == ["python"]
        if pending is not None and not is_python:
            raise ExampleError(f"{shown}:{pending[0]}: 'not runnable' is not right before a block")
        if is_python:
            if re.search(r"^\s*>>> ", token.content, re.MULTILINE):
                raise ExampleError(
                    f"{shown}:{line + 1}: an interactive >>> session: write the code, and "
                    "what it prints as `# -> ...` comments"
                )
            reason = pending[1] if pending else None
            blocks.append(Block(shown, line + 1, token.content, reason))
            pending = None
    if pending is not None:
        raise ExampleError(f"{shown}:{pending[0]}: 'not runnable' is not right before a block")
    unknown = sorted(set(environments) - set(ENVIRONMENTS))
    if unknown:
        raise ExampleError(
            f"{shown}: unknown environment(s) {unknown}; known: {list(ENVIRONMENTS)}"
        )
    if blocks and not environments:
        raise ExampleError(
            f"{shown}: say where its python blocks run: <!-- examples: NAME --> with NAME in "
            f"{list(ENVIRONMENTS)}"
        )
    return Page(shown, tuple(dict.fromkeys(environments)), tuple(blocks))


def _compile(block: Block, mode_flags: int = 0) -> Any:
    # Leading newlines: a traceback names the page and its own line numbers.
    source = "\n" * (block.line - 1) + block.code
    return compile(source, str(block.page), "exec", flags=mode_flags, dont_inherit=True)


def run_block(block: Block, namespace: dict[str, Any]) -> str:
    """Run ``block`` in ``namespace``; return what it printed. A block that is not runnable is
    only parsed (top-level ``await`` allowed: it may be a fragment of a coroutine).

    Raises:
        ExampleError: the block raised (chained), or a ``# ->`` line is not in its output.
    """
    if block.not_runnable is not None:
        try:
            _compile(block, ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        except SyntaxError as exc:
            raise ExampleError(f"{block.where}: not valid Python: {exc}") from exc
        return ""
    output = io.StringIO()
    try:
        code = _compile(block)
        with redirect_stdout(output):
            exec(code, namespace)  # the documented example, as a reader runs it
    except Exception as exc:
        printed = output.getvalue()[-2000:]
        raise ExampleError(
            f"{block.where}: the example raised {type(exc).__name__}: {exc}\n"
            f"(mark it <!-- not runnable: reason --> if it cannot run here)\nprinted:\n{printed}"
        ) from exc
    _check_output(block, output.getvalue())
    return output.getvalue()


def _check_output(block: Block, printed: str) -> None:
    lines: Iterator[str] = iter(printed.splitlines())
    for expected in block.expected_output:
        if not any(line.rstrip() == expected.rstrip() for line in lines):
            raise ExampleError(
                f"{block.where}: the block did not print {expected!r} (after the lines "
                f"before it); it printed:\n{printed[-2000:]}"
            )
