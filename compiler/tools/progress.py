"""What a long-running tool is doing, on stderr, once it has run for a second: nothing at all
for a quick run, so short commands stay quiet.

On a terminal the status is one line rewritten in place (and erased at the end, before the
results are printed); elsewhere (a CI log, a pipe) each status is a line of its own, from the
one current when the second has passed.
"""
from __future__ import annotations

import shutil
import sys
import threading
from typing import TextIO

AFTER = 1.0  # seconds of silence before the status is shown


class Progress:
    """`with Progress() as p: p.update("checking f_grad (1 of 3)")`. A timer thread reveals the
    status after `after` seconds (0: at once); updates after that are written as they come."""

    def __init__(self, stream: TextIO | None = None, after: float = AFTER, prefix: str = "tapeless: "):
        self.stream = stream if stream is not None else sys.stderr
        self.after = after
        self.prefix = prefix
        self.tty = _isatty(self.stream)
        self.status: str | None = None
        self.shown = False  # the second has passed: statuses are written
        self.written = False  # a status line is on a terminal, to be erased
        self.done = False
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None

    def __enter__(self) -> "Progress":
        if self.after <= 0:
            self.shown = True
        else:
            self._timer = threading.Timer(self.after, self.reveal)
            self._timer.daemon = True  # (never keeps the process alive)
            self._timer.start()
        return self

    def update(self, status: str) -> None:
        with self._lock:
            self.status = status
            if self.shown and not self.done:
                self._write()

    def reveal(self) -> None:
        """The timer's work: from now on statuses are written, the current one first."""
        with self._lock:
            if self.done:
                return
            self.shown = True
            if self.status is not None:
                self._write()

    def __exit__(self, *exc) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer.join()  # (at once unless it is writing: no thread outlives the command)
        with self._lock:
            self.done = True
            if self.written:
                self.stream.write("\r\033[K")  # the terminal's status line erased: results follow
                self.stream.flush()

    def _write(self) -> None:
        text = self.prefix + self.status
        if self.tty:
            width = shutil.get_terminal_size().columns - 1  # (a wrapped line could not be rewritten)
            self.stream.write("\r\033[K" + text[:width])
            self.written = True
        else:
            self.stream.write(text + "\n")
        self.stream.flush()


def _isatty(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # (a closed or minimal stream)
        return False
