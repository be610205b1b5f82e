"""Exceptions that carry a one-line message naming the file and the cause, and an exit code.

Exit codes (like httpie's ``ExitStatus``): 0 ok, 1 an input could not be coloured (bad input; for
``batch``: a reel failed), 2 usage, 3 colouring failed part-way for a reason other than the input (the
disk full, out of memory at batch size 1: the same command may work with more room), 130 interrupted
(Ctrl-C), 143 terminated (SIGTERM).
The CLI prints ``str(error)`` on one line; ``--traceback`` shows the chain.
"""

from __future__ import annotations

import errno
from pathlib import Path

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_PROCESSING, EXIT_INTERRUPTED, EXIT_TERMINATED = 0, 1, 2, 3, 130, 143


class Terminated(KeyboardInterrupt):
    """SIGTERM (a job scheduler, ``docker stop``, ``kill``) turned into an exception by the CLI, so a
    run unwinds as on Ctrl-C: temporary output deleted, a batch's manifest saved."""


class FilmcolorError(Exception):
    """Base class: ``FilmcolorError(path, cause)`` renders as ``"<path>: <cause>"``."""

    exit_code = EXIT_FAILED

    def __init__(self, path: str | Path | None, cause: str) -> None:
        self.path = None if path is None else Path(path)
        self.cause = cause
        super().__init__(f"{self.path}: {cause}" if self.path is not None else cause)


class InputError(FilmcolorError):
    """The input cannot be read as a film or photo (missing, empty, damaged, no video...)."""


class OutputError(FilmcolorError):
    """The output cannot be written (exists without --overwrite, would overwrite the input...)."""

    exit_code = EXIT_USAGE


class ModelError(FilmcolorError):
    """A model name or weights file cannot be resolved or loaded."""

    exit_code = EXIT_USAGE


class SettingsError(FilmcolorError):
    """A setting does not fit this input (a picture area reaching outside its frame)."""

    exit_code = EXIT_USAGE


class ProcessingError(FilmcolorError):
    """Colouring failed part-way for a reason other than the input (out of memory at batch size 1, the
    disk full, the encoder refusing); no output is left. Its own exit code, so a script can tell
    "skip this reel" (1) from "try again with more room" (3)."""

    exit_code = EXIT_PROCESSING


_NO_ROOM = {errno.ENOSPC, errno.EDQUOT}


def out_of_room(exc: BaseException) -> bool:
    """Whether ``exc`` comes from a disk (or quota) with no room left, anywhere in its chain: every reel
    after it would fail the same way, after colouring most of its frames."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in _NO_ROOM:
            return True
        exc = exc.__cause__ or exc.__context__
    return False
