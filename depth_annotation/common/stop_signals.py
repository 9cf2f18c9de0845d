"""SIGINT and SIGTERM as one request to stop cleanly, for nodes and commands alike.

One rule for every process of the suite: the first signal finalises what is being written (never
abandons a half-written file); in a node a repeat while finalising is noted on stderr, never a
second interrupt (a one-shot command, whose clean-up only removes its staging, is interrupted
again); the exit status says which came. SIGTERM exits 143 (128 + 15), as a shell reports a
terminated program. SIGINT is a node's, `record`'s and `play`'s normal stop (`ros2 launch` and
Ctrl-C send it), so they exit 0; a one-shot command it cuts short (export, mono, calibrate,
batch) exits 130, as a shell reports an interrupted program.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

SIGTERM_EXIT = 128 + signal.SIGTERM  # 143
SIGINT_EXIT = 128 + signal.SIGINT  # 130
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Stopped(KeyboardInterrupt):
    """Raised in the main thread by the first SIGINT or SIGTERM (`StopSignals(interrupt=True)`)."""


class StopSignals:
    """Catches SIGINT and SIGTERM while in use (`with StopSignals() as stop:` restores the handlers
    it replaced; `install()` keeps them for the life of the process).

    interrupt: the first signal raises `Stopped` in the main thread (a loop that cannot poll);
    with False it only sets `flag`, which the loop polls. interrupt_again: a repeat raises too (a
    first `Stopped` swallowed by a library's cleanup must not leave a command deaf). Inside
    `deferred()` (finished files being moved into place) it never raises, only records; the caller
    reports it once they are.
    """

    def __init__(self, *, interrupt: bool = True, interrupt_again: bool = False) -> None:
        self.interrupt = interrupt
        self.interrupt_again = interrupt_again
        # Set by any signal and polled (per message by the exporter): a KeyboardInterrupt raised
        # inside a finalizer or a library's cleanup is swallowed by Python, the flag is not.
        self.flag = threading.Event()
        self.caught: list[int] = []
        self._deferring = False
        self._previous: dict[int, Any] = {}  # what signal.signal returned: a handler, SIG_DFL/SIG_IGN or None

    def install(self) -> StopSignals:
        self._previous = {sig: signal.signal(sig, self._on_signal) for sig in _STOP_SIGNALS}
        return self

    def __enter__(self) -> StopSignals:
        return self.install()

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _on_signal(self, signum: int, frame: object) -> None:
        repeat = bool(self.caught)
        self.caught.append(signum)
        self.flag.set()
        if repeat and not self.interrupt_again:
            print(
                f"{signal.Signals(signum).name} again: still shutting down (finalising files)",
                file=sys.stderr,
                flush=True,
            )
            return
        if self.interrupt and not self._deferring:
            raise Stopped

    @contextmanager
    def deferred(self) -> Iterator[None]:
        """A signal in this block is recorded (`flag`), not raised."""
        self._deferring = True
        try:
            yield
        finally:
            self._deferring = False

    @property
    def requested(self) -> bool:
        return bool(self.caught)

    @property
    def name(self) -> str:
        """The first signal's name (SIGINT, SIGTERM); SIGINT for a KeyboardInterrupt no handler saw."""
        return signal.Signals(self.caught[0]).name if self.caught else "SIGINT"

    @property
    def terminated(self) -> bool:
        """A SIGTERM came, first or while shutting down after SIGINT."""
        return signal.SIGTERM in self.caught

    def exit_code(self) -> int:
        """A node's, `record`'s or `play`'s: 143 once a SIGTERM came, else 0 (SIGINT is their normal stop)."""
        return SIGTERM_EXIT if self.terminated else 0

    def interrupted_exit_code(self) -> int:
        """A run cut short (a one-shot command, a node in start-up): 143 after SIGTERM, else 130."""
        return SIGTERM_EXIT if self.terminated else SIGINT_EXIT
