"""The supervisor's pure rules: the restart backoff and how a worker's end is told."""

from __future__ import annotations

import signal

from fluxabee._supervise import (
    MAX_RESTART_BACKOFF,
    RESTART_BACKOFF,
    describe_status,
    restart_delay,
)


def test_the_restart_backoff_doubles_per_quick_death_and_is_capped() -> None:
    assert restart_delay(1) == RESTART_BACKOFF
    assert restart_delay(2) == 2 * RESTART_BACKOFF
    assert restart_delay(3) == 4 * RESTART_BACKOFF
    assert restart_delay(50) == MAX_RESTART_BACKOFF


def test_a_status_is_told_as_an_exit_code_or_a_signal() -> None:
    # waitpid statuses as POSIX encodes them: the signal in the low bits, the code above.
    assert describe_status(int(signal.SIGKILL)) == "killed by SIGKILL"
    assert describe_status(3 << 8) == "exited with 3"
    assert describe_status(0) == "exited with 0"
