"""The sound and subtitle files that go into a coloured film besides its own streams.

The user's ``--add-track`` files (each must hold a sound or subtitle stream FFmpeg can read, else
an :class:`InputError`), then the companions a film brings by itself: the sound files inside a
folder of scans (``sequences.sound_files``) and the subtitle sidecars beside a film
(``reel.srt``, ``reel.en.srt``...), whose names no player would pair with the coloured copy. A
companion FFmpeg cannot read is named in a ``warn`` and left out; the film is not refused for it.
"""

from __future__ import annotations

from glob import escape as glob_escape
from pathlib import Path
from typing import Callable, Sequence

import av

from . import sequences, tags
from .errors import InputError

Warn = Callable[[str], None]

SUBTITLE_SIDECARS = (".srt", ".ass", ".ssa", ".vtt")


def subtitle_sidecars(src: Path) -> list[Path]:
    """Subtitle files beside a film named after it, as players find them (``reel.srt``,
    ``reel.en.srt``, ``reel.fr.ass``...), sorted: they go into the coloured film, whose own name no
    player would pair with them."""
    stem = src.stem
    return sorted(p for p in src.parent.glob(f"{glob_escape(stem)}.*")
                  if p.suffix.lower() in SUBTITLE_SIDECARS and p.is_file()
                  and (p.stem == stem or (p.stem.startswith(stem + ".") and tags.language_in_name(p))))


def film_tracks(src: Path, tracks: Sequence[str | Path], warn: Warn | None) -> list[Path]:
    """The sound and subtitle files a film gets besides its own streams, each once: ``tracks`` (the
    user's ``--add-track``: each must be readable, ``check_track``), then ``usable_companions``."""
    named = [Path(t) for t in tracks]
    for track in named:
        check_track(track)
    return list({p.resolve(): p for p in named + usable_companions(src, warn)}.values())


def usable_companions(src: Path, warn: Warn | None) -> list[Path]:
    """The files that go with ``src`` by themselves - the sound files inside a folder of scans, the
    subtitle sidecars of a film - that FFmpeg can read; one that it cannot is named in a ``warn``
    and left out (the film is coloured without it, not refused for it)."""
    usable = []
    for track in sequences.sound_files(src) if src.is_dir() else subtitle_sidecars(src):
        try:
            check_track(track)
        except InputError as exc:
            if warn is not None:
                warn(f"{exc}; left out of the coloured film")
            continue
        usable.append(track)
    return usable


def check_track(track: Path) -> None:
    """An added sound or subtitle file must exist and hold a sound or subtitle stream."""
    if not track.is_file():
        raise InputError(track, "no such file" if not track.exists() else "not a regular file")
    try:
        with av.open(str(track), "r", metadata_errors="ignore") as c:
            if not any(s.type in ("audio", "subtitle") for s in c.streams):
                raise InputError(track, "holds no sound or subtitle stream to add")
    except (av.FFmpegError, OSError, UnicodeDecodeError) as exc:
        raise InputError(track, "not a sound or subtitle file FFmpeg can read") from exc
