"""The ``archsearch`` app, its consoles and the error handler every command shares."""

from __future__ import annotations

import contextlib
import functools
import re
import sys
import warnings
from collections.abc import Callable, Iterator
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from ..core import shown
from ..errors import SearchError, SpecError

__all__ = ["JsonOpt", "app", "err", "friendly", "out", "shown", "warnings_as_lines"]

app = typer.Typer(
    name="archsearch",
    help="Neural architecture search and hybrid design for vision backbones.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# emoji=False: rich would draw ``file.yaml:100: ...`` as ``file.yaml💯 ...`` (":100:" is an emoji code)
out = Console(emoji=False) if sys.stdout.isatty() else Console(width=160, emoji=False)
err = Console(stderr=True, emoji=False)

F = TypeVar("F", bound=Callable[..., Any])
SpecArg = Annotated[str, typer.Argument(help="A spec YAML file or a zoo name (see `archsearch zoo`).")]
ResolutionOpt = Annotated[int | None, typer.Option("--resolution", "-r", help="Override the input size.")]
ClassesOpt = Annotated[int | None, typer.Option("--num-classes", help="Override the number of classes.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for machines instead of a table.")]


#: the password of an URL in a message: ``scheme://user:PASSWORD@``
_PASSWORD = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^\s:/@]*):[^\s/@]*@")


def friendly(fn: F) -> F:
    """Turn a SpecError or SearchError into clear messages on stderr and exit status 2, no
    traceback: one ``error: ...`` line per issue (a message that holds line breaks, such as a
    driver's error, is joined into one line; the password of a storage URL is masked)."""

    def say(text: str) -> None:
        line = " ".join(part.strip() for part in text.splitlines() if part.strip())
        line = _PASSWORD.sub(r"\1:***@", line)  # postgresql://user:secret@host -> user:***@host
        err.print(f"[bold red]error:[/] {escape(line)}", highlight=False, soft_wrap=True)

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except SpecError as exc:
            for issue in exc.issues:
                say(str(issue))
            hint = getattr(exc, "hint", None)  # e.g. the experiment that would search a space
            if hint:
                err.print(escape(hint), highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
        except SearchError as exc:
            say(str(exc))
            raise typer.Exit(2) from None

    return run  # type: ignore[return-value]


@contextlib.contextmanager
def warnings_as_lines() -> Iterator[None]:
    """Inside: a warning is one ``warning: MESSAGE`` line on stderr when it is raised (not Python's
    ``file:line: UserWarning:`` and the source line), so a long run shows it before its progress."""

    def show(message: Warning | str, *args: Any, **kwargs: Any) -> None:
        err.print(f"[bold yellow]warning:[/] {escape(str(message))}", highlight=False, soft_wrap=True)

    with warnings.catch_warnings():
        warnings.showwarning = show
        yield


def _version(value: bool) -> None:
    if value:
        from .. import __version__

        print(f"archsearch {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version of archsearch and exit."
        ),
    ] = False,
) -> None:
    """Neural architecture search and hybrid design for vision backbones."""
