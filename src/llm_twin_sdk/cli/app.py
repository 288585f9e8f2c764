"""The ``llm-twin`` application: its commands (from :mod:`.aws_side` and :mod:`.data_side`),
the global options, and one place where SDK errors and Ctrl-C become a message and an exit
code (:class:`_Commands`). Nothing heavy is imported here: ``llm-twin --help`` loads no
model library and no boto3.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from .._version import __version__
from ..errors import LLMTwinError
from . import aws_side, data_side
from .output import interrupted, report_error, show_warnings

__all__ = ["app"]

_HELP = """Deploy, scale and ask an LLM Twin from the shell (docs/cli.md).

AWS side (a YAML spec file, e.g. examples/twin.yaml; settings from LLM_TWIN_* variables):
plan, up, status, scale, down, list. Data side (the footing LLM_TWIN_* settings describe,
by default embedded and offline): ingest, ask, eval.

Exit codes: 0 ok, 1 SDK or AWS error, 2 usage or bad input, 3 configuration or credentials,
130 interrupted.
"""


class _Commands(TyperGroup):
    """Runs a command; an SDK error prints as one message (exit 1, 2 or 3, see
    :func:`~.output.exit_code`), Ctrl-C as a note of what was done (exit 130)."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except LLMTwinError as error:
            raise typer.Exit(int(report_error(error))) from None
        except KeyboardInterrupt as stop:
            # A command that knows what it did says so in the interrupt (ingest does).
            interrupted(str(stop) or "stopped before the command finished")


app = typer.Typer(
    name="llm-twin",
    cls=_Commands,
    help=_HELP,
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode="markdown",
    pretty_exceptions_show_locals=False,  # a local may hold a secret
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"llm-twin {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Log what the SDK does (INFO) on stderr.")
    ] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    show_warnings()
    if verbose:
        logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")


aws_side.register(app)
data_side.register(app)
