"""Where a run's output goes and how it appears: whole, atomically, never over its input.

- :func:`default_output` (``<stem>.color<ext>``, ``.mkv`` where the container cannot hold the codec),
  :func:`default_frames_output` (``<name>.color``, a folder of pictures) and
  :func:`default_preview_output`;
- checks made before any decoding: :func:`check_input` (exists, readable, not empty; or a folder of
  scans), :func:`check_output` / :func:`check_frames_output` (never the input, never over an existing
  file without ``overwrite``, a writable folder), :func:`check_room_for_pictures` (a DPX reel that
  cannot fit is refused before hours of colouring);
- :func:`atomic_output` / :func:`atomic_folder`: everything is written under a hidden temporary
  name beside the target and renamed over it only when complete; any exception, KeyboardInterrupt
  included, deletes it. A run killed outright (SIGKILL, the OOM killer, a power cut) cannot delete
  its own: the next run of that output does (:func:`remove_dead_runs_temps`), once it knows the
  process that wrote it is gone;
- :func:`expected_frames`: how many frames a run will write, for progress and disk room.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import secrets
import shutil
import socket
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Sequence

from . import media, sequences
from .config import RunConfig
from .errors import InputError, OutputError

Warn = Callable[[str], None]

#: containers whose extension a coloured copy keeps (they hold H.264/FFV1/ProRes); others -> .mkv
KEEP_SUFFIXES = {".mp4", ".m4v", ".mov", ".mkv", ".avi", ".ts", ".mts", ".m2ts", ".nut"}
STILL_OUTPUT_SUFFIX = ".png"


def default_output(src: str | Path, *, still: bool | None = None, codec: str = "h264") -> Path:
    """``<stem>.color<ext>`` beside the input; stills (and ``still=True``) get ``<stem>.color.png``.
    A video container that cannot hold the output (``codec`` video: ProRes in MP4, say) becomes
    ``.mkv``, which holds every codec filmcolor writes; so does an AVI for H.264 (``avi_lag``)."""
    src = Path(src)
    if still is None:
        still = media.is_still_path(src)
    if still:
        suffix = STILL_OUTPUT_SUFFIX
    elif src.suffix.lower() in KEEP_SUFFIXES and media.film_output_problem(src, codec) is None \
            and avi_lag(src, codec) is None:
        suffix = src.suffix
    else:
        suffix = ".mkv"
    return src.with_name(f"{src.stem}.color{suffix}")


def avi_lag(dst: str | Path, codec: str) -> str | None:
    """What is wrong with H.264 in an AVI file ``dst`` (None when nothing): AVI stores no timestamps,
    and FFmpeg's reader, which mpv, ffplay and filmcolor itself use, gives H.264 there a frame of
    decoding delay it does not have, so every picture shows a frame late against its sound (x264
    with B-frames off read back 1, 2, 3... for frames 0, 1, 2...; MPEG-4 part 2 and FFV1 read right)."""
    if Path(dst).suffix.lower() != ".avi" or codec != "h264":
        return None
    return ("H.264 in AVI plays a frame late against its sound in FFmpeg-based players (mpv, ffplay); "
            ".mkv keeps them together")


def default_frames_output(src: str | Path) -> Path:
    """``<name>.color`` beside the input: the folder a film's pictures go into (``--frames-as``)."""
    src = Path(src)
    return src.with_name(f"{src.name if src.is_dir() else src.stem}.color")


def default_preview_output(src: str | Path) -> Path:
    src = Path(src)
    return src.with_name(f"{src.stem}.preview.png")


def default_for(src: str | Path, *, codec: str = "h264", frames_as: str | None = None, preview: bool = False,
                still: bool | None = None) -> Path:
    """Where ``run`` writes ``src`` by default: the preview sheet (``preview``), the picture folder of a
    film (``frames_as``; a photo stays a photo), or the coloured file (:func:`default_output`)."""
    if preview:
        return default_preview_output(src)
    still = media.is_still_path(src) if still is None else still
    if frames_as and not still:
        return default_frames_output(src)
    return default_output(src, still=still, codec=codec)


def check_input(src: Path) -> None:
    """Cheap checks before any decoding: exists, a regular readable file, not empty; or a folder
    holding an image sequence without gaps."""
    if not src.exists():
        raise InputError(src, "no such file")
    if src.is_dir():
        media.sequence_in(src)
        return
    if not src.is_file():
        raise InputError(src, "not a regular file")
    if not os.access(src, os.R_OK):
        raise InputError(src, "permission denied")
    if src.stat().st_size == 0:
        raise InputError(src, "empty file")


def _same_file(a: Path, b: Path) -> bool:
    if a.resolve() == b.resolve():
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _check_parent(dst: Path) -> Path:
    """The folder ``dst`` goes into, which must exist and be writable."""
    parent = dst.parent if str(dst.parent) else Path(".")
    if not parent.is_dir():
        raise OutputError(dst, f"folder {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(dst, f"folder {parent} is not writable")
    return parent


def name_problem(dst: Path) -> str | None:
    """Why ``dst``'s name does not fit its file system (None when it does): a long reel name plus
    ``.color`` failed when the file was written - or, asked whether it existed, as an "unexpected error"."""
    longest = _name_max(dst.parent)
    size = len(os.fsencode(dst.name))
    if size <= longest:
        return None
    return (f"its name is {size} bytes, more than the {longest} its file system allows; give a shorter one "
            "with -o (or rename the input)")


def _name_max(folder: Path) -> int:
    """The longest file name (bytes) the file system of ``folder`` (or of the nearest one that exists) takes."""
    while str(folder) not in ("", ".") and not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        return os.pathconf(folder if str(folder) else ".", "PC_NAME_MAX")
    except (OSError, ValueError):
        return 255


def _check_name(dst: Path) -> None:
    if problem := name_problem(dst):
        raise OutputError(dst, problem)


def check_output(src: Path, dst: Path, overwrite: bool) -> None:
    """Refuse to write over the input (always), over an existing file (unless ``overwrite``), into a
    missing or read-only folder, onto a directory, or under a name too long for the file system."""
    _check_name(dst)
    if _same_file(src, dst):
        raise OutputError(dst, "is the input file; filmcolor never writes over its input")
    if dst.is_dir():
        raise OutputError(dst, "is a directory; give a file name with -o")
    _check_parent(dst)
    if dst.exists() and not overwrite:
        raise OutputError(dst, "already exists (use --overwrite to replace it)")


def check_frames_output(src: Path, dst: Path, overwrite: bool, fmt: str) -> None:
    """Refuse a picture folder that is (or is inside) the input, whose parent is missing or read-only,
    or that exists and is not empty - unless ``overwrite`` and it holds only the pictures and sound
    file filmcolor writes there (a folder of anything else is never replaced)."""
    _check_name(dst)
    pattern, first = sequences.frame_names(src, fmt)
    for name in (pattern % first, sequences.side_name(src)):  # the pictures' names, from the input's, too
        if (size := len(os.fsencode(name))) > (longest := _name_max(dst)):
            raise OutputError(dst, f"its pictures would be named {name}, {size} bytes, more than the {longest} "
                                   "its file system allows; rename the input")
    if _same_file(src, dst) or (src.is_dir() and dst.resolve().is_relative_to(src.resolve())):
        raise OutputError(dst, "is the input folder; filmcolor never writes into its input")
    _check_parent(dst)
    if not dst.exists():
        return
    if not dst.is_dir():
        raise OutputError(dst, "is a file; --frames-as writes a folder of pictures")
    entries = list(dst.iterdir())
    if not entries:
        return
    if not overwrite:
        raise OutputError(dst, "already exists (use --overwrite to replace it)")
    ours = sequences.names_pattern(sequences.frame_names(src, fmt)[0])
    side = sequences.side_name(src)
    others = [e.name for e in entries if not (e.is_file() and (ours.match(e.name) or e.name == side))]
    if others:
        raise OutputError(dst, f"holds other files ({', '.join(sorted(others)[:3])}); --overwrite replaces only "
                               "a folder of filmcolor's own pictures")


def check_added_tracks(dst: Path, tracks: Sequence[Path]) -> None:
    """Refuse, before any colouring, ``--add-track`` files whose subtitles the film ``dst`` cannot
    hold in any form (SubRip into MPEG-TS or AVI): the user asked for them (a film's own streams
    and sidecars are left out with a warning instead)."""
    from .carry import subtitles_left_out

    for track in tracks:
        if left := subtitles_left_out(track, media.container_for(dst)):
            raise OutputError(dst, f"{dst.suffix} cannot hold the subtitles of {track} ({', '.join(left)}); "
                                   "a .mkv holds them")


def check_room_for_pictures(dst: Path, info, config: RunConfig, warn: Warn | None) -> None:
    """Refuse a DPX run that cannot fit on its disk before hours of colouring (DPX sizes are exact;
    a 2K 10-bit reel takes about 12 MB a frame), and warn when TIFF or PNG pictures might not fit
    uncompressed."""
    total = expected_frames(info, config)
    if not total:
        return
    turned = media.quarter_turns(info.rotation) % 2
    w, h = (info.height, info.width) if turned else (info.width, info.height)
    need = total * sequences.picture_bytes(config.frames_as, w, h, info.bit_depth)
    parent = _check_parent(dst)
    free = shutil.disk_usage(parent).free
    if need <= free:
        return
    gb = lambda n: f"{n / 1e9:.1f} GB"  # noqa: E731
    if config.frames_as == "dpx":
        raise OutputError(dst, f"{total} DPX pictures need {gb(need)}; {parent} has {gb(free)} free")
    if warn is not None:
        warn(f"{dst}: {total} {config.frames_as.upper()} pictures take up to {gb(need)} uncompressed; "
             f"{parent} has {gb(free)} free")


@functools.cache
def process_space() -> str:
    """8 hex digits naming where this process's pid means something: the machine (its host name)
    and, on Linux, the pid namespace (a container has its own). A temp name carries it beside the
    pid, so a run on another machine sharing the folder, or in another container, is never taken
    for a dead one here."""
    where = socket.gethostname()
    try:
        where += f":{os.stat('/proc/self/ns/pid').st_ino}"
    except OSError:
        pass
    return hashlib.sha1(where.encode()).hexdigest()[:8]


#: Bytes of the output's name a temporary name carries (the rest is the tag): a name the file system
#: takes with ``.color`` added must still fit with ``.filmcolor-<pid>@<space>-<hex>.part`` added
TEMP_NAME_BYTES = 100


def temp_name(name: str) -> str:
    """``name`` cut to ``TEMP_NAME_BYTES`` bytes, as a temporary name beside it begins with it."""
    raw = os.fsencode(name)
    return name if len(raw) <= TEMP_NAME_BYTES else os.fsdecode(raw[:TEMP_NAME_BYTES])


def _temp_tag() -> str:
    return f"filmcolor-{os.getpid()}@{process_space()}-{secrets.token_hex(4)}"


_TEMP_TAG = re.compile(r"\.filmcolor-(\d+)@([0-9a-f]{8})-[0-9a-f]+\.(?:part|old)")


def temp_path(dst: Path) -> Path:
    """A hidden, unique temporary name beside ``dst`` with the same extension (the muxer and image
    writer pick the format from it): ``.<stem>.filmcolor-<pid>@<process_space>-<hex>.part<ext>``
    (the stem cut to ``TEMP_NAME_BYTES``)."""
    return dst.with_name(f".{temp_name(dst.stem)}.{_temp_tag()}.part{dst.suffix}")


def left_by_dead_run(name: str) -> bool:
    """Is ``name`` a temp file or folder of ours whose run is gone: written by a process of this
    machine and pid namespace that no longer exists? (A live or unknown writer: False.)"""
    m = _TEMP_TAG.search(name)
    if m is None or m[2] != process_space():
        return False
    pid = int(m[1])
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # it exists (another user's process): not ours to judge
        return False
    return False


def remove_dead_runs_temps(dst: Path) -> list[Path]:
    """Delete the temp files and folders that runs writing ``dst`` (or a sibling of its stem) left
    when they were killed outright (:func:`left_by_dead_run`). An earlier picture folder a run had
    moved aside (``.old``) goes only when ``dst`` is there: killed before its new folder took the
    place, it is the only copy. Returns what was removed."""
    removed = []
    prefixes = (f".{temp_name(dst.stem)}.filmcolor-", f".{temp_name(dst.name)}.filmcolor-")
    try:
        entries = list(dst.parent.iterdir())
    except OSError:
        return removed
    for p in entries:
        if p.name.endswith(".old") and not dst.exists():
            continue
        if p.name.startswith(prefixes) and left_by_dead_run(p.name):
            try:
                if p.is_dir() and not p.is_symlink():
                    shutil.rmtree(p)
                else:
                    p.unlink()
            except OSError:
                continue
            removed.append(p)
    return removed


@contextmanager
def atomic_output(dst: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``dst``; rename it to ``dst`` when the block succeeds, delete it
    when it raises anything (KeyboardInterrupt included)."""
    remove_dead_runs_temps(dst)
    tmp = temp_path(dst)
    try:
        yield tmp
        if not tmp.is_file():
            raise OutputError(dst, "nothing was written")
        os.replace(tmp, dst)
    except BaseException:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        raise


@contextmanager
def atomic_folder(dst: Path) -> Iterator[Path]:
    """Yield a new hidden folder beside ``dst``; when the block succeeds it takes ``dst``'s place (an
    old ``dst`` is moved aside first and deleted after), when it raises it is deleted with what it holds."""
    remove_dead_runs_temps(dst)
    tmp = dst.with_name(f".{temp_name(dst.name)}.{_temp_tag()}.part")
    tmp.mkdir()
    try:
        yield tmp
        if not any(tmp.iterdir()):
            raise OutputError(dst, "nothing was written")
        old = None
        if dst.exists():
            old = dst.with_name(f".{temp_name(dst.name)}.{_temp_tag()}.old")
            os.rename(dst, old)
        try:
            os.rename(tmp, dst)
        except BaseException:
            if old is not None:
                os.rename(old, dst)
            raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def expected_frames(info, config: RunConfig) -> int | None:
    """How many frames a run will write, when the container says enough to tell (else None);
    ``config.start`` on the stream's own clock (``RunConfig.on_timeline``)."""
    fps = float(info.fps) if info.fps else 0.0
    total = int(info.frames) if info.frames else None
    if total is None and info.duration and fps:
        total = int(round(float(info.duration) * fps))
    into = None if config.start is None else max(0.0, config.start - (info.start_time or 0.0))
    if into or config.duration is not None:
        if not fps:
            return None
        if total is not None and into:
            total = max(0, total - int(round(into * fps)))
        if config.duration is not None:
            seg = int(round(config.duration * fps))
            total = seg if total is None else min(total, seg)
    return total
