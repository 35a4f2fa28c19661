"""The command group, the options every command shares, and error handling.

Where to connect: ``--config FILE`` (the YAML layout) or ``$FLUXABEE_CONFIG``; else
``--redis URI`` or ``$REDIS_URL`` with the streams named on the command line (``--stream``,
repeatable, or the command's STREAM argument); else ``redis://127.0.0.1:6379/0``.
Exit codes: 0 ok, 1 a runtime failure, 2 a usage error; an error is one line on stderr
(``--debug`` adds the traceback); passwords are masked everywhere.
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console

from .. import __version__
from .._sync.engine import Engine
from .._uris import mask
from ..config import Config
from ..errors import (
    BrokerConnectionError,
    ConfigError,
    FluxabeeError,
    InvalidArgumentError,
    UnknownGroupError,
    UnknownStreamError,
)
from ._format import parse_duration

F = TypeVar("F", bound=Callable[..., Any])

#: Where commands connect when nothing says otherwise (FluxaORM's default).
DEFAULT_URL = "redis://127.0.0.1:6379/0"
#: Errors that mean the command line (or the config it names) is wrong: exit code 2.
USAGE_ERRORS = (ConfigError, UnknownStreamError, UnknownGroupError, InvalidArgumentError)

#: Width of the output when it is not a terminal and ``$COLUMNS`` does not say.
PIPE_WIDTH = 160


def _console(*, stderr: bool) -> Console:
    console = Console(stderr=stderr, highlight=False, soft_wrap=True)
    if not console.is_terminal and not os.environ.get("COLUMNS"):
        console.width = PIPE_WIDTH  # a pipe or a file: do not squeeze tables into 80
    return console


#: Standard output and standard error of the command.
out = _console(stderr=False)
err = _console(stderr=True)


class CommandError(FluxabeeError):
    """A command that cannot do what was asked (exit code 1), said in one line."""


class _State:
    """What the error handler needs to know about the run."""

    debug = False
    #: Set when the command fell back to :data:`DEFAULT_URL`: said in connection errors.
    defaulted = False


STATE = _State()


def _set_debug(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:
        STATE.debug = True


class Duration(click.ParamType):  # type: ignore[type-arg]
    """A duration option: ``250ms``, ``5s``, ``10m``, ``1h30m`` or plain seconds."""

    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        """Seconds, as a float."""
        if isinstance(value, (int, float)):
            return float(value)
        try:
            return parse_duration(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


DURATION = Duration()


@dataclass(frozen=True)
class Target:
    """Where a command connects, from its options."""

    config_file: str | None
    redis_url: str | None
    streams: tuple[str, ...]

    def config(self, *named: str) -> Config:
        """The config: the file, else a one-pool config on the URL with the streams named
        here and on the command line. A stream the file does not declare is an error."""
        names = list(dict.fromkeys([*named, *self.streams]))
        if self.config_file:
            config = Config.from_yaml(Path(self.config_file))
            for name in names:
                config.pool_for_stream(name)
            return config
        if not names:
            raise click.UsageError(
                "name the streams (STREAM arguments or --stream), or give a config file "
                "with --config or FLUXABEE_CONFIG"
            )
        url = self.redis_url
        if not url:
            url = DEFAULT_URL
            STATE.defaulted = True
        return Config.from_url(url, streams=names)

    def selected(self, config: Config, *named: str) -> list[str]:
        """The streams a command works on: the ones named, else every configured one."""
        names = list(dict.fromkeys([*named, *self.streams]))
        return names or list(config.streams)


def target_options(func: F) -> F:
    """Add ``--config``, ``--redis``, ``--stream`` and ``--debug``; pass ``target``."""

    def wrapper(
        config_file: str | None, redis_url: str | None, streams: tuple[str, ...], **kwargs: Any
    ) -> Any:
        ctx = click.get_current_context()
        given: dict[str, Any] = ctx.find_root().obj or {}
        explicit = (click.core.ParameterSource.COMMANDLINE,)
        if given.get("config_file") and ctx.get_parameter_source("config_file") not in explicit:
            config_file = given["config_file"]
        if given.get("redis_url") and ctx.get_parameter_source("redis_url") not in explicit:
            redis_url = given["redis_url"]
        streams = (*given.get("streams", ()), *streams)
        return func(target=Target(config_file, redis_url, streams), **kwargs)

    wrapper.__name__ = func.__name__
    wrapper.__doc__ = func.__doc__
    decorated: Any = wrapper
    for option in (
        click.option(
            "--debug",
            is_flag=True,
            expose_value=False,
            callback=_set_debug,
            help="Show the traceback of an error.",
        ),
        click.option(
            "--stream",
            "streams",
            multiple=True,
            metavar="NAME",
            help="A stream to work on (repeatable); with --redis, the streams it declares.",
        ),
        click.option(
            "--redis",
            "redis_url",
            envvar="REDIS_URL",
            metavar="URI",
            help="Redis to use when no config file is given (default $REDIS_URL, else "
            f"{DEFAULT_URL}).",
        ),
        click.option(
            "--config",
            "config_file",
            envvar="FLUXABEE_CONFIG",
            metavar="FILE",
            type=click.Path(dir_okay=False),
            help="A YAML config (FluxaORM's layout); default $FLUXABEE_CONFIG.",
        ),
    ):
        decorated = option(decorated)
    return decorated  # type: ignore[no-any-return]


@contextmanager
def engine_for(config: Config, **kwargs: Any) -> Iterator[Engine]:
    """A sync engine on ``config``, closed at the end."""
    with Engine(config, **kwargs) as engine:
        yield engine


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "--version", prog_name="fluxabee")
@click.option(
    "--debug",
    is_flag=True,
    expose_value=False,
    callback=_set_debug,
    is_eager=True,
    help="Show the traceback of an error.",
)
@click.option("--config", "config_file", metavar="FILE", help="As the commands' --config.")
@click.option("--redis", "redis_url", metavar="URI", help="As the commands' --redis.")
@click.option("--stream", "streams", multiple=True, metavar="NAME", help="As --stream.")
@click.pass_context
def cli(
    ctx: click.Context, config_file: str | None, redis_url: str | None, streams: tuple[str, ...]
) -> None:
    """fluxabee: an event broker over Redis Streams.

    Start with `fluxabee demo` (it needs no Redis: it starts a throwaway server).
    Connection options work before the command too: `fluxabee --redis URI stats s`.
    """
    ctx.obj = {"config_file": config_file, "redis_url": redis_url, "streams": streams}


def _message(exc: BaseException) -> str:
    text = mask(str(exc)) or type(exc).__name__
    if isinstance(exc, BrokerConnectionError) and STATE.defaulted:
        text += (
            f" (no --config, FLUXABEE_CONFIG, --redis or REDIS_URL: tried {DEFAULT_URL}; "
            "`fluxabee server` starts a local one)"
        )
    return text.replace("\n", " ")


def _fail(exc: BaseException, code: int) -> int:
    if STATE.debug:
        err.print(mask("".join(traceback.format_exception(exc))), end="", markup=False)
    err.print(f"fluxabee: error: {_message(exc)}", markup=False)
    return code


def run(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    from . import _commands, _dashboard, _demo, _run, _worker  # noqa: F401, PLC0415 - they register

    STATE.debug = STATE.defaulted = False
    try:
        result = cli.main(args=argv, prog_name="fluxabee", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.Abort:
        err.print("fluxabee: aborted")
        return 130
    except click.ClickException as exc:
        exc.show()
        return int(exc.exit_code)
    except USAGE_ERRORS as exc:
        return _fail(exc, 2)
    except (FluxabeeError, OSError) as exc:
        return _fail(exc, 1)
    except KeyboardInterrupt:
        err.print("fluxabee: interrupted")
        return 130
    except Exception as exc:
        code = _fail(exc, 1)
        if not STATE.debug:
            err.print("fluxabee: this looks like a bug; --debug shows the traceback")
        return code
    return result if isinstance(result, int) else 0
