"""The ``archsearch`` app, its consoles and the error handler every command shares."""

from __future__ import annotations

import contextlib
import functools
import re
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
import typer.core
from rich.console import Console
from rich.markup import escape

from ..core import BOUND_WORDS, OVERRIDE, expected_noun, output_file_problem, shown
from ..errors import SearchError, SpecError

__all__ = [
    "JsonOpt",
    "app",
    "err",
    "friendly",
    "option_error",
    "out",
    "refuse_output",
    "shown",
    "warnings_as_lines",
]


def option_error(exc: typer.BadParameter) -> str:
    """A refused option value as one of our lines: ``--limit -1: must be at least 0 (got -1);
    allowed: an integer, at least 0``. typer checks an option's type and its ``min``/``max`` with
    pydantic and raises ``BadParameter`` from the ``ValidationError``, whose first error gives the
    value got and the bound; any other ``BadParameter`` keeps its own message."""
    from pydantic import ValidationError

    param = exc.param
    every = list(getattr(param, "opts", []))
    opts = [o for o in every if o.startswith("--")] or every
    name = opts[0] if opts else (exc.param_hint if isinstance(exc.param_hint, str) else "a value")
    if opts and len(every) > 1:  # the short form too: the user may have typed that one
        name += f" ({', '.join(o for o in every if o != opts[0])})"
    cause = exc.__cause__
    if not isinstance(cause, ValidationError) or not cause.errors():
        return f"{name}: {exc.message}"
    error = cause.errors()[0]
    kind, value, ctx = error["type"], error.get("input"), error.get("ctx") or {}
    annotation = getattr(getattr(param, "type_descriptor", None), "annotation", None)
    noun = expected_noun(kind, annotation.__name__ if isinstance(annotation, type) else "") or "a value"
    low, high = getattr(param, "min", None), getattr(param, "max", None)
    limits = [f"{w} {b:g}" for w, b in (("at least", low), ("at most", high)) if b is not None]
    allowed = f"{noun}, {' and '.join(limits)}" if limits else noun
    if kind in BOUND_WORDS:
        word, key = BOUND_WORDS[kind]
        return f"{name}: must be {word} {ctx[key]:g} (got {value}); allowed: {allowed}"
    return f"{name}: expected {noun} (got {value!r}); allowed: {allowed}"


class _Commands(typer.core.TyperGroup):
    """The app's command group: a refused option value (``--limit -1``, ``--batch abc``) is one
    ``error: ...`` line naming the option, the value and what is allowed (:func:`option_error`)
    and exit status 2, like every other bad input, instead of click's usage box."""

    def make_context(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().make_context(*args, **kwargs)
        except _UsageError as exc:  # an unknown option before the command (archsearch --bogus)
            _refuse(usage_error(exc))

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except typer.BadParameter as exc:
            _refuse(usage_error(exc) if type(exc).__name__ == "MissingParameter" else option_error(exc))
        except _UsageError as exc:  # an unknown option or command, a missing value, extra arguments
            _refuse(usage_error(exc, ctx.invoked_subcommand))


def _refuse(line: str) -> NoReturn:
    """``error: LINE`` on stderr, exit status 2."""
    err.print(f"[bold red]error:[/] {escape(line)}", highlight=False, soft_wrap=True)
    raise typer.Exit(2) from None


def refuse_device(device: str) -> None:
    """Exit 2 with one error line when ``--device`` names a device this machine lacks, worded as
    every device check is (:func:`~archsearch.evaluate.device_problem`)."""
    from ..evaluate import device_problem

    problem = device_problem(device)
    if problem is not None:
        _refuse(f"--device {device}: {problem[0]}; allowed: {problem[1]}")


def refuse_output(option: str, path: str | Path) -> None:
    """Exit 2 with one error line when the file ``path`` that ``option`` names cannot be written
    (:func:`archsearch.core.output_file_problem`: a folder, a file on the way, a folder that cannot
    be made or written in), before the command does the work whose result it would hold."""
    problem = output_file_problem(path)
    if problem is not None:
        _refuse(
            f"{option}: cannot write {path}: {problem} (got {str(path)!r}); "
            "allowed: a file path in a folder you can write"
        )


#: click's UsageError (typer vendors click privately; BadParameter, NoSuchOption, ... derive from it)
_UsageError: type[typer.TyperException] = typer.BadParameter.__mro__[1]


def usage_error(exc: Any, command_name: str | None = None) -> str:
    """click's usage error as one of our lines instead of its usage box: ``--resolutio: no such
    option (did you mean --resolution?); allowed: --json, --resolution, ...``, ``compil: no such
    command (did you mean compile?); allowed: ...``, ``compile: missing argument SPEC; allowed: a spec
    YAML file or a zoo name ...``; any other keeps click's words after the command's name
    (``command_name`` where click gives no context)."""
    ctx = exc.ctx
    command = ctx.command if ctx is not None else None
    where = f"archsearch {ctx.info_name}" if ctx is not None and ctx.parent is not None else "archsearch"
    if ctx is None and command_name:
        where = f"archsearch {command_name}"
    if type(exc).__name__ == "NoSuchOption":
        mean = f" (did you mean {' or '.join(exc.possibilities)}?)" if exc.possibilities else ""
        opts = sorted({o for p in getattr(command, "params", []) for o in p.opts if o.startswith("--")})
        allowed = f"; allowed: {', '.join([*opts, '--help'])}" if command is not None else ""
        return f"{exc.option_name}: no such option{mean}{allowed}"
    if type(exc).__name__ == "MissingParameter" and exc.param is not None:
        param = exc.param
        what = getattr(param, "help", None) or ""
        allowed = f"; allowed: {what[:1].lower()}{what[1:].rstrip('.')}" if what else ""
        if isinstance(param, typer.core.TyperArgument):
            return f"{where}: missing argument {(param.name or 'value').upper()}{allowed}"
        return f"{where}: missing option {param.opts[0]}{allowed}"
    found = re.match(r"No such command '(.+?)'\.(?: Did you mean '(.+?)'\?)?", exc.message)
    names = getattr(command, "list_commands", None)
    if found and names is not None:
        mean = f" (did you mean {found.group(2)}?)" if found.group(2) else ""
        return f"{found.group(1)}: no such command{mean}; allowed: {', '.join(names(ctx))}"
    needs = re.match(r"Option '(.+?)' requires an argument", exc.message)
    if needs:
        return f"{needs.group(1)}: needs a value (see {where} --help)"
    message = exc.message.rstrip(".")
    return f"{where}: {message[:1].lower()}{message[1:]} (see {where} --help)"


app = typer.Typer(
    cls=_Commands,
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
ResolutionOpt = Annotated[
    int | None, typer.Option("--resolution", "-r", min=1, help="Override the input size.")
]
ClassesOpt = Annotated[
    int | None, typer.Option("--num-classes", min=1, help="Override the number of classes.")
]
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
                say(_option_named(str(issue)))
            hint = getattr(exc, "hint", None)  # e.g. the experiment that would search a space
            if hint:
                err.print(escape(hint), highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
        except SearchError as exc:
            say(str(exc))
            raise typer.Exit(2) from None

    return run  # type: ignore[return-value]


#: The options that override a spec or space value: the keyword override of
#: :func:`archsearch.load_spec` and :func:`archsearch.space.load_space` they pass -> the option.
#: The loaders put the errors they cause down to them (``<override> input_size=...``,
#: :attr:`archsearch.errors.Issue.cause`); the CLI names the option instead.
_OVERRIDE_OPTIONS = {"input_size": "--resolution", "num_classes": "--num-classes"}


def _option_named(line: str) -> str:
    """``<override> input_size=100: ...`` (an issue the spec or space has only with an override)
    -> ``--resolution 100: ...``."""
    found = re.match(rf"{re.escape(OVERRIDE)} (\w+)=(\S+): ", line)
    option = _OVERRIDE_OPTIONS.get(found.group(1)) if found else None
    return f"{option} {found.group(2)}: {line[found.end() :]}" if found and option else line


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
