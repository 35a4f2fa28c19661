"""The ``fluxabee`` command (``pip install 'fluxabee[cli]'``; also ``python -m fluxabee``).

``fluxabee demo`` shows the library at work on a throwaway server; ``server``, ``publish``,
``tail``, ``stats``, ``pending``, ``claim``, ``dead-letters``, ``prune`` and ``worker`` are
for the people who run it. ``fluxabee --help`` lists them, ``fluxabee CMD --help`` explains
one. :func:`main` is the console script's entry point.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

#: Said (on stderr, exit code 1) when click or rich is not installed.
MISSING_EXTRA = "fluxabee: the command needs the cli extra: pip install 'fluxabee[cli]'"


def main(argv: Sequence[str] | None = None) -> None:
    """Run the command line (default ``sys.argv[1:]``) and exit with its code."""
    try:
        import click  # noqa: F401, PLC0415 - only to tell a missing extra in one line
        import rich  # noqa: F401, PLC0415
    except ImportError as exc:
        sys.stderr.write(f"{MISSING_EXTRA} ({exc.name} is missing)\n")
        raise SystemExit(1) from None
    from ._app import run  # noqa: PLC0415 - imports click

    raise SystemExit(run(argv))


__all__ = ["main"]
