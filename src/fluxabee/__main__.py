"""``python -m fluxabee``: the ``fluxabee`` command."""

from fluxabee.cli import main

main()
