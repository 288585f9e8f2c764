"""What the command line prints and how it exits: the exit codes, the two consoles (data on
stdout, messages on stderr), JSON output, and one clear message for every SDK error.

Exit codes (docs/cli.md, "Exit codes")::

    0    done
    1    the SDK or AWS failed (a deployment, a call, the store...)
    2    usage or bad input: an unknown command or option, a bad spec file or argument
    3    configuration or credentials: settings, AWS region / credentials / permissions
    130  interrupted (Ctrl-C); what was done is said
"""

from __future__ import annotations

import json
import sys
import warnings
from enum import IntEnum
from typing import TYPE_CHECKING, Any, NoReturn

from ..errors import (
    AccessDeniedError,
    ConfigurationError,
    InvalidInputError,
    LLMTwinError,
    SpecFileError,
)

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

__all__ = [
    "ExitCode",
    "exit_code",
    "fail",
    "interrupted",
    "print_json",
    "report_error",
    "show_warnings",
    "stderr",
    "stdout",
    "table",
]


class ExitCode(IntEnum):
    """What the process's exit status means."""

    OK = 0
    ERROR = 1
    """The SDK or AWS failed: a deployment, an AWS call, the model, the store."""
    USAGE = 2
    """Usage or bad input: an unknown command or option (click's convention), a spec file or
    an argument the SDK refused (:class:`~llm_twin_sdk.errors.InvalidInputError`)."""
    CONFIGURATION = 3
    """Settings, AWS region or credentials missing or wrong, or a permission denied."""
    INTERRUPTED = 130
    """Ctrl-C (128 + SIGINT, the shell's convention)."""


def exit_code(error: LLMTwinError) -> ExitCode:
    """The exit code of an SDK error (the most specific rule first)."""
    if isinstance(error, SpecFileError | InvalidInputError):
        return ExitCode.USAGE
    if isinstance(error, ConfigurationError | AccessDeniedError):
        return ExitCode.CONFIGURATION
    return ExitCode.ERROR


_consoles: dict[str, Console] = {}


def _console(name: str) -> Console:
    """The console of ``stdout`` or ``stderr``, built on first use for the current stream
    (a test runner swaps ``sys.stdout`` between runs)."""
    from rich.console import Console

    stream = sys.stdout if name == "stdout" else sys.stderr
    console = _consoles.get(name)
    if console is None or console.file is not stream:
        console = Console(file=stream, highlight=False, soft_wrap=True)
        _consoles[name] = console
    return console


def stdout() -> Console:
    """Where data goes: tables, answers (``--json`` writes plain JSON instead)."""
    return _console("stdout")


def stderr() -> Console:
    """Where messages go: progress, notes, warnings, errors."""
    return _console("stderr")


def print_json(data: Any) -> None:
    """``data`` as indented JSON on stdout (machine output: no colour, no wrapping)."""
    sys.stdout.write(json.dumps(data, indent=2, default=str, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def table(*columns: str, title: str | None = None, numbers: int = 0) -> Table:
    """A rich table with these column headers; the last ``numbers`` columns hold numbers
    (right-aligned)."""
    from rich.table import Table

    grid = Table(title=title, title_justify="left", header_style="bold")
    for index, column in enumerate(columns):
        grid.add_column(column, justify="right" if index >= len(columns) - numbers else "left")
    return grid


def _message(error: BaseException) -> str:
    lines = [str(error) or type(error).__name__]
    lines += [str(note) for note in getattr(error, "__notes__", ())]
    return "\n".join(lines)


def report_error(error: LLMTwinError) -> ExitCode:
    """Print an SDK error as one message (its notes after it) on stderr, no traceback; its
    exit code."""
    from rich.markup import escape

    code = exit_code(error)
    kind = type(error).__name__
    stderr().print(f"[bold red]error[/] ({escape(kind)}): {escape(_message(error))}")
    return code


def fail(message: str, code: ExitCode = ExitCode.USAGE) -> NoReturn:
    """Print ``message`` as an error and exit with ``code`` (a refusal of the command line
    itself, e.g. ``down`` without ``--yes`` and no terminal to ask)."""
    import typer
    from rich.markup import escape

    stderr().print(f"[bold red]error[/]: {escape(message)}")
    raise typer.Exit(int(code))


def interrupted(note: str) -> NoReturn:
    """Ctrl-C: say what was done, exit 130."""
    import typer
    from rich.markup import escape

    stderr().print(f"[bold yellow]interrupted[/]: {escape(note)}")
    raise typer.Exit(int(ExitCode.INTERRUPTED))


def show_warnings() -> None:
    """Warnings print as one line (``warning: ...``), without a file name and line number."""
    from rich.markup import escape

    def show(  # noqa: PLR0917 -- warnings.showwarning's own signature
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: Any = None,
        line: str | None = None,
    ) -> None:
        stderr().print(f"[yellow]warning[/] ({category.__name__}): {escape(str(message))}")

    warnings.showwarning = show
