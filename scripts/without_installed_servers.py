#!/usr/bin/env python3
"""Run a command as on a machine with no Redis or Valkey installed.

``scripts/without_installed_servers.py CMD [ARGS...]``: every ``$PATH`` directory that holds
a ``redis-*`` / ``valkey-*`` executable is replaced by a temporary directory of links to
everything else in it (``tests.servers.without_installed_servers``), so the only servers
left are the embedded pip packages'. CI runs the test suite once more this way.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.servers import without_installed_servers  # noqa: E402


def main() -> int:
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="fluxabee-no-redis-") as scratch:
        env = dict(os.environ, PATH=without_installed_servers(Path(scratch)))
        env.pop("FLUXABEE_SERVER_BINARY", None)
        return subprocess.call(sys.argv[1:], env=env)


if __name__ == "__main__":
    raise SystemExit(main())
