"""What every ``pairs`` command shares: one error path, ``--debug`` and date parameters.

Every command of a group made with ``pairs_group`` (``pairs`` itself, and ``python -m
pairs_assets.live.commands``) — including commands added later and those of its subgroups —
reports an expected error as ONE line on stderr, ``Error: <message>``, and exits with status 2:
the platform's own errors (``PairsError`` and its subclasses: a bad universe or bars file, a
partition that is not a session, a failed run …), click's usage errors (``BadParameter``, a
missing option) and date parse errors. The message names the file, row, symbol, session or field.
``pairs --debug <command>`` prints the traceback as well. Anything else is a bug and keeps its
traceback.

Kept free of Dagster and the platform's heavy modules so that the live commands can use it.
"""

from __future__ import annotations

import datetime as dt
import sys
import traceback

import click

from pairs_assets.errors import PairsError

#: Exit status of every expected error (click's own status for usage errors).
EXIT_ERROR = 2
DATE_FMT = "%Y-%m-%d"


def _expected(exc: BaseException) -> bool:
    """Errors a user causes and can fix from the message alone (not bugs)."""
    if isinstance(exc, (PairsError, click.ClickException)):
        return True
    pandas_parsing = sys.modules.get("pandas._libs.tslibs.parsing")
    if pandas_parsing is not None and isinstance(exc, pandas_parsing.DateParseError):
        return True
    dagster = sys.modules.get("dagster")  # only when a command has imported it
    return dagster is not None and isinstance(exc, dagster.DagsterUnknownPartitionError)


def one_line(exc: BaseException) -> str:
    """The error's message on one line (click's formatting for its own errors)."""
    if isinstance(exc, click.ClickException):
        message = exc.format_message()
        usage = isinstance(exc, click.UsageError) and (
            isinstance(exc, click.MissingParameter) or not isinstance(exc, click.BadParameter)
        )
        if usage and exc.ctx is not None:  # a malformed command line, not a bad value
            message += f" (see '{exc.ctx.command_path} --help')"
    else:
        message = str(exc) or type(exc).__name__
    return " ".join(part.strip() for part in message.splitlines() if part.strip())


def is_debug(ctx: click.Context | None = None) -> bool:
    """Whether the root command was given ``--debug`` (False outside a command)."""
    ctx = ctx or click.get_current_context(silent=True)
    return bool(ctx is not None and ctx.find_root().params.get("debug"))


class PairsGroup(click.Group):
    """A click group whose commands report expected errors as one line on stderr, exit status 2."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as exc:
            if not _expected(exc):
                raise
            if is_debug(ctx):
                traceback.print_exc()
            click.echo(f"Error: {one_line(exc)}", err=True)
            ctx.exit(EXIT_ERROR)


def pairs_group(name: str | None = None, **attrs):
    """``click.group`` with the one error path (``PairsGroup``) and a ``--debug`` option."""

    def decorate(function):
        function = click.option(
            "--debug", is_flag=True, help="On an error, print the traceback (and Dagster's warnings) too."
        )(function)
        return click.group(name, cls=PairsGroup, **attrs)(function)

    return decorate


class DateParam(click.ParamType):
    """A calendar date written ``YYYY-MM-DD`` (returned as that string)."""

    name = "YYYY-MM-DD"

    def convert(self, value, param, ctx):
        if isinstance(value, dt.date):
            return value.strftime(DATE_FMT)
        try:
            return dt.datetime.strptime(str(value).strip(), DATE_FMT).strftime(DATE_FMT)
        except ValueError:
            self.fail(f"{value!r} is not a date (YYYY-MM-DD)", param, ctx)


class SessionParam(DateParam):
    """A date that is an NYSE session; otherwise the error names the previous and next session."""

    name = "SESSION"

    def convert(self, value, param, ctx):
        from pairs_assets.partitions import check_session

        date = super().convert(value, param, ctx)
        try:
            check_session(date, what="")
        except PairsError as exc:
            self.fail(str(exc).strip(), param, ctx)
        return date


DATE = DateParam()
SESSION = SessionParam()
