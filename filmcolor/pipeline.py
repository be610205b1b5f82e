"""The colouring pipeline: one film (or still photo) in, one coloured file out, nothing staged on disk.

Video, streamed with bounded memory whatever the film's length, in five threads::

    probe(src) -> VideoInfo
    [decode thread]   decode(src)                       PyAV (releases the GIL), bounded queue
                        -> FrameItem(L at render size)  Y plane -> L* LUT -> INTER_AREA; planes kept
    [flow thread]     -> temporal.FlowMotion            the flow smoother's optical flow (needs L only;
                                                        CUDA or >= 4 cores, else in the calling thread)
    [calling thread]  -> batches -> Colorizer.predict_ab (torch intra-op threads)
                        -> temporal.smooth              off | ema | flow, reset at scene cuts
    [compose thread]  -> compose                        new U/V (on the device on CUDA); Y untouched
    [encode thread]   -> VideoWriter.write              same pts/time base; audio/subtitle copied

Queues between the threads are bounded (a few batches), so memory does not grow with the film. An
exception in any thread is re-raised in the caller (the original exception object); on any exit the
other threads are stopped and joined before the output is deleted. ``pipelined=False`` runs the same
stages one after another in the calling thread (the reference the tests compare against).

Output is atomic: everything is written to a hidden temporary file in the target folder (same
extension) and renamed over ``dst`` only when complete; any exception, KeyboardInterrupt included,
deletes it. The input is never written to: an output path that is the input (same resolved path or
same file) is always refused, and an existing output is refused unless ``config.overwrite``.

``progress`` is a callable ``(done_frames, total_frames_or_None)``; ``warn`` a callable ``(message)``.
This module never imports click or rich, so it runs the same from the CLI, Python or a Ray task.
"""

from __future__ import annotations

import dataclasses
import os
import queue
import secrets
import shutil
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from glob import escape as glob_escape
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence, TypeVar

import av
import cv2
import numpy as np

from . import bars, color, compose, media, sequences, stills, tags, temporal
from .config import RunConfig
from .errors import FilmcolorError, InputError, OutputError, ProcessingError, SettingsError
from .inference import Colorizer, cpu_threads

Progress = Callable[[int, "int | None"], None]
Warn = Callable[[str], None]
T = TypeVar("T")

#: containers whose extension a coloured copy keeps (they hold H.264/FFV1/ProRes); others -> .mkv
KEEP_SUFFIXES = {".mp4", ".m4v", ".mov", ".mkv", ".avi", ".ts", ".mts", ".m2ts", ".nut"}
STILL_OUTPUT_SUFFIX = ".png"
PREVIEW_PANEL_HEIGHT = 360  # px: preview panels taller than this are shrunk


@dataclass(frozen=True)
class RunResult:
    """What one call wrote: ``kind`` is ``"video"``, ``"still"``, ``"preview"`` or ``"frames"`` (a
    folder of numbered pictures)."""

    src: Path
    dst: Path
    frames: int
    seconds: float
    kind: str
    area: bars.Area | None = None  # the picture inside black bars, where only it was coloured

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


# --- paths ------------------------------------------------------------------------------------------
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


def check_output(src: Path, dst: Path, overwrite: bool) -> None:
    """Refuse to write over the input (always), over an existing file (unless ``overwrite``), into a
    missing or read-only folder, or onto a directory."""
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


def check_room_for_pictures(dst: Path, info, config: RunConfig, warn: Warn | None) -> None:
    """Refuse a DPX run that cannot fit on its disk before hours of colouring (DPX sizes are exact;
    a 2K 10-bit reel takes about 12 MB a frame), and warn when TIFF or PNG pictures might not fit
    uncompressed."""
    total = expected_frames(info, config)
    if not total:
        return
    turned = quarter_turns(info.rotation) % 2
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


def temp_path(dst: Path) -> Path:
    """A hidden, unique temporary name beside ``dst`` with the same extension (the muxer and image
    writer pick the format from it)."""
    return dst.with_name(f".{dst.stem}.filmcolor-{os.getpid()}-{secrets.token_hex(4)}.part{dst.suffix}")


@contextmanager
def atomic_output(dst: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``dst``; rename it to ``dst`` when the block succeeds, delete it
    when it raises anything (KeyboardInterrupt included)."""
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
    tmp = dst.with_name(f".{dst.name}.filmcolor-{os.getpid()}-{secrets.token_hex(4)}.part")
    tmp.mkdir()
    try:
        yield tmp
        if not any(tmp.iterdir()):
            raise OutputError(dst, "nothing was written")
        old = None
        if dst.exists():
            old = dst.with_name(f".{dst.name}.filmcolor-{os.getpid()}-{secrets.token_hex(4)}.old")
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


# --- streaming helpers -------------------------------------------------------------------------------
_DONE = object()


def prefetch(items: Iterable[T], size: int, name: str = "filmcolor-decode") -> Iterator[T]:
    """Run ``items`` in a producer thread, at most ``size`` items ahead of the consumer.

    Exceptions in the producer are re-raised in the consumer; closing the consumer (or an exception
    in it) stops the producer and closes its iterator in the producer's own thread.
    """
    q: queue.Queue = queue.Queue(maxsize=max(1, size))
    stop = threading.Event()

    def put(entry) -> bool:
        while not stop.is_set():
            try:
                q.put(entry, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        it = iter(items)
        try:
            for x in it:
                if not put((x, None)):
                    return
            put((_DONE, None))
        except BaseException as exc:  # handed to the consumer
            put((_DONE, exc))
        finally:
            close = getattr(it, "close", None)
            if close is not None:
                try:
                    close()
                except Exception:
                    pass

    thread = threading.Thread(target=work, name=name, daemon=True)
    thread.start()
    try:
        while True:
            x, exc = q.get()
            if x is _DONE:
                if exc is not None:
                    raise exc
                return
            yield x
    finally:
        stop.set()
        thread.join(timeout=10)


class Sink:
    """Run ``consume(item)`` for each item given to :meth:`put`, in a consumer thread, with at most
    ``size`` items waiting.

    An exception raised by ``consume`` is re-raised (the same object) by the next :meth:`put` or by
    :meth:`close`; after it the thread consumes nothing more. :meth:`close` waits until every item is
    consumed; :meth:`abort` drops what is waiting and joins the thread once the item in hand is done.
    ``done`` counts consumed items.
    """

    def __init__(self, consume: Callable[[T], None], size: int, name: str = "filmcolor-encode") -> None:
        self._consume = consume
        self._q: queue.Queue = queue.Queue(maxsize=max(1, size))
        self._stop = threading.Event()
        self._exc: BaseException | None = None
        self.done = 0
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._thread.start()

    def _work(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    x = self._q.get(timeout=0.05)
                except queue.Empty:
                    continue
                if x is _DONE:
                    return
                self._consume(x)
                self.done += 1
        except BaseException as exc:  # handed to the producer
            self._exc = exc
        finally:
            self._stop.set()

    def _check(self) -> None:
        if self._exc is not None:
            raise self._exc
        if self._stop.is_set():
            raise RuntimeError(f"{self._thread.name} thread has stopped")

    def put(self, item: T) -> None:
        while True:
            self._check()
            try:
                self._q.put(item, timeout=0.05)
                return
            except queue.Full:
                continue

    def close(self) -> None:
        """Wait for every item to be consumed; re-raise the consumer's exception, if any."""
        self.put(_DONE)  # type: ignore[arg-type]
        self._thread.join()
        if self._exc is not None:
            raise self._exc

    def abort(self) -> None:
        """Stop without consuming what is waiting; join the thread."""
        self._stop.set()
        self._thread.join(timeout=30)
        while True:  # free the frames still queued
            try:
                self._q.get_nowait()
            except queue.Empty:
                break


def batched(items: Iterable[temporal.FrameItem], colorizer: Colorizer) -> Iterator[temporal.FrameItem]:
    """Fill ``item.ab`` by running the network on batches of at most ``colorizer.batch_size`` items
    (a change of frame size ends a batch). Yields the items in order."""
    batch: list[temporal.FrameItem] = []

    def flush() -> Iterator[temporal.FrameItem]:
        ab = colorizer.predict_ab(np.stack([it.L for it in batch]))
        for it, a in zip(batch, ab):
            it.ab = a
        yield from batch
        batch.clear()

    for item in items:
        if batch and item.L.shape != batch[0].L.shape:
            yield from flush()
        batch.append(item)
        if len(batch) >= colorizer.batch_size:
            yield from flush()
    if batch:
        yield from flush()


@dataclass
class _Source:
    """What compose and encode need of a decoded frame: the frame (timestamps), its planes in the
    output pixel format, and L* at chroma resolution (None when compose runs on the device)."""

    frame: object
    planes: object
    L_chroma: np.ndarray | None
    area: bars.Area | None = None  # the picture inside black bars (None: the whole frame)


def _decoded(src: Path, config: RunConfig, warn: Warn | None = None) -> Iterator[object]:
    """``media.decode`` with decoder failures reported as an :class:`InputError` naming ``src``; with
    ``config.scan_transfer``, each frame shown at video levels first (:func:`to_video_levels`)."""
    try:
        frames = media.decode(src, start=config.start, duration=config.duration, warn=warn, fps=config.sequence_fps)
        if config.scan_transfer:
            frames = (to_video_levels(frame, config.scan_transfer) for frame in frames)
        yield from frames
    except FilmcolorError:
        raise
    except (av.FFmpegError, EOFError) as exc:
        raise InputError(src, f"cannot decode video: {exc}") from exc


_FLOAT_FORMATS = ("f32", "f16")


def to_video_levels(frame: av.VideoFrame, transfer: str) -> av.VideoFrame:
    """A scan coded as ``transfer`` (``"log"``: Cineon printing density; ``"linear"``: linear light)
    -> the same picture at video levels, as 16-bit RGB with the frame's timestamps
    (``color.scan_to_video``: a table for integer scans, the formula for floating-point ones)."""
    if any(tag in frame.format.name for tag in _FLOAT_FORMATS):
        values = frame.reformat(format="gbrpf32le").to_ndarray()  # (H, W, 3) RGB, linear floats
        if transfer == "log":
            values = np.clip(values, 0.0, 1.0)
        video = np.round(color.scan_to_video(values, transfer) * 65535).astype(np.uint16)
    else:
        video = color.scan_to_video_lut16(transfer)[frame.reformat(format="rgb48le").to_ndarray()]
    out = av.VideoFrame.from_ndarray(np.ascontiguousarray(video), format="rgb48le")
    out.pts = frame.pts
    if frame.time_base is not None:
        out.time_base = frame.time_base
    return out


def _with_chroma(planes, u: np.ndarray, v: np.ndarray):
    return media.Planes(y=planes.y, u=u, v=v, bit_depth=planes.bit_depth, full_range=planes.full_range,
                        matrix=planes.matrix)


def quarter_turns(rotation: int | float | None) -> int:
    """Counter-clockwise quarter turns (0-3) that show a stored frame upright, from the stream's
    display rotation (degrees counter-clockwise, as ``VideoInfo.rotation``); 0 for non-right angles."""
    r = int(round(rotation or 0)) % 360
    return r // 90 if r % 90 == 0 else 0


def flow_thread_pays(colorizer: Colorizer) -> bool:
    """Whether the flow smoother's optical flow gets a thread of its own: on CUDA, or with >= 4
    usable cores. On the 2-core CPU machine it did not pay: end to end the same (53.3 vs 53.6 fps,
    four runs each), and flow cost 19% instead of 10% (median) over ``smooth=off``."""
    return colorizer.device.type == "cuda" or cpu_threads() >= 4


def _with_motion(items: Iterator[temporal.FrameItem], motion: temporal.FlowMotion) -> Iterator[temporal.FrameItem]:
    """Attach the flow smoother's :class:`temporal.Motion` to each item (closing this closes ``items``)."""
    try:
        for item in items:
            item.motion = motion(item.L)
            yield item
    finally:
        close = getattr(items, "close", None)
        if close is not None:
            close()


def _frame_items(frames: Iterable[object], pix_fmt: str, colorizer: Colorizer, deflicker: bool = False,
                 turns: int = 0, chroma_L: bool = True, area: bars.Area | None = None) -> Iterator[temporal.FrameItem]:
    """Decoded frames -> FrameItem(index, _Source, render-size L*). With ``turns`` the render-size
    L* is turned upright (the network expects skies on top); compose turns ``ab`` back.
    ``chroma_L=False`` skips the chroma-size L* (compose on the device computes its own). With an
    ``area`` (the picture inside black bars) the L* is the area's, for frames of the area's size."""
    pairs: Iterable = ((f, media.frame_to_planes(f, pix_fmt)) for f in frames)
    if deflicker:  # the picture's brightness is evened out; black bars are neither measured nor changed
        def get(pair):
            y = pair[1].y
            return y[area.slices()] if compose.applies(area, y.shape) else y

        def put(pair, y):
            f, p = pair
            if y.shape != p.y.shape:
                y, picture = p.y.copy(), y
                y[area.slices()] = picture
            return f, media.Planes(y=y, u=p.u, v=p.v, bit_depth=p.bit_depth, full_range=p.full_range,
                                   matrix=p.matrix)
        pairs = temporal.deflicker(pairs, get=get, put=put)
    for i, (frame, planes) in enumerate(pairs):
        if deflicker:
            top = (1 << planes.bit_depth) - 1
            if planes.y.dtype == np.uint16 and top < 65535:
                np.minimum(planes.y, top, out=planes.y)
        L_full = compose.planes_L(planes)
        cropped = area if compose.applies(area, L_full.shape) else None
        L_pic = L_full[cropped.slices()] if cropped else L_full
        rh, rw = colorizer.render_shape(*L_pic.shape)
        item_L = compose.resize_L(L_pic, rh, rw)
        if turns:
            item_L = np.ascontiguousarray(np.rot90(item_L, turns))
        L_chroma = compose.chroma_L(planes, L_full, cropped) if chroma_L else None
        yield temporal.FrameItem(i, _Source(frame, planes, L_chroma, cropped), item_L)


def expected_frames(info, config: RunConfig) -> int | None:
    """How many frames a run will write, when the container says enough to tell (else None)."""
    fps = float(info.fps) if info.fps else 0.0
    total = int(info.frames) if info.frames else None
    if total is None and info.duration and fps:
        total = int(round(float(info.duration) * fps))
    if config.start or config.duration is not None:
        if not fps:
            return None
        if total is not None and config.start:
            total = max(0, total - int(round(config.start * fps)))
        if config.duration is not None:
            seg = int(round(config.duration * fps))
            total = seg if total is None else min(total, seg)
    return total


# --- entry points ----------------------------------------------------------------------------------
def colorize_file(src: str | Path, dst: str | Path | None = None, config: RunConfig | None = None, *,
                  colorizer: Colorizer | None = None, progress: Progress | None = None,
                  warn: Warn | None = None, pipelined: bool = True, tracks: Sequence[str | Path] = (),
                  area: bars.Area | None = None) -> RunResult:
    """Colour one film or still photo; see the module docstring. Raises a ``FilmcolorError``
    (InputError, OutputError, ModelError, SettingsError, ProcessingError) naming the file on failure, leaving no
    output behind. ``pipelined=False`` runs decode, inference and encode one after another in the
    calling thread (same output; a reference for tests and benchmarks). ``config.frames_as``
    (``"dpx"``, ``"tiff"``, ``"png"``) writes the film as numbered pictures into the folder ``dst`` instead
    (``sequences.SequenceWriter``; default ``<name>.color``), which appears whole or not at all.
    ``tracks``: sound or subtitle files added after the film's own streams; a folder of scans adds
    the sound files inside it (``sequences.sound_files``) by itself. Only the picture ``config.bars``
    names is coloured (auto: inside black bars; off: the whole frame; or a ``WxH+X+Y`` area): ``area``
    where the caller found it (a segment of a film: the whole film's), else :func:`look_at`, which
    also finds a film in colour already (a ``warn``: its colours are replaced); ``RunResult.area``
    says where the picture was."""
    config = config or RunConfig()
    frames_as = config.frames_as
    src = Path(src)
    check_input(src)
    still = media.is_still_path(src)
    info = None
    if not still:
        info = media.probe(src, config.sequence_fps)
        still = bool(info.is_still)
        stated = stated_transfer(src, info)
        warn_transfer(src, stated, config.scan_transfer, warn)
        info = as_decoded(info, config)
        end = (info.start_time or 0.0) + info.duration if info.duration else None
        if config.start is not None and end is not None and config.start >= end:
            raise InputError(src, f"--start {config.start:g} s is past the end of the film ({end:.2f} s)")
        tracks = film_tracks(src, tracks, warn)
    elif tracks:
        raise OutputError(src, "is a photo; a photo takes no sound or subtitle track")
    if frames_as is not None:
        if still:
            raise OutputError(src, "is a photo; --frames-as writes the pictures of a film")
        dst = Path(dst) if dst is not None else default_frames_output(src)
        check_frames_output(src, dst, config.overwrite, frames_as)
        check_room_for_pictures(dst, info, config, warn)
    else:
        dst = Path(dst) if dst is not None else default_output(src, still=still, codec=config.codec)
        check_output(src, dst, config.overwrite)
        problem = stills.output_problem(dst) if still else media.film_output_problem(dst, config.codec)
        if problem:
            raise OutputError(dst, problem)
        lag = None if still else avi_lag(dst, config.codec)
        if lag and warn is not None:
            warn(f"{dst}: {lag}")
    if colorizer is None:
        colorizer = Colorizer.from_config(config)
        if warn is not None:
            colorizer.on_oom = lambda old, new: warn(f"out of memory at batch size {old}; retrying at {new}")
    t0 = time.perf_counter()
    if not still and area is None:  # a segment of a film gets the whole film's area, found (and told) once
        look = look_at(src, info, config)
        warn_in_colour(src, look, warn)
        area = look.area
    if not still:
        area = None if area.whole else area
    try:
        with (atomic_folder(dst) if frames_as else atomic_output(dst)) as tmp:
            if still:
                area = _colorize_still(src, tmp, dst, colorizer, warn, config.bars)
                frames = 1
                if progress is not None:
                    progress(1, 1)
            else:
                frames = _colorize_video(src, tmp, info, config, colorizer, progress, warn, pipelined, tracks,
                                         stated, area)
    except FilmcolorError as exc:
        if exc.path is None:  # e.g. out of memory at batch 1: say which film
            raise type(exc)(src, exc.cause) from exc
        raise
    except (OSError, av.FFmpegError) as exc:  # disk full, folder gone, the encoder or muxer refusing...
        # a failure part-way (exit 1), not a usage error: the same command may work with more room
        raise ProcessingError(dst, f"cannot write: {getattr(exc, 'strerror', None) or exc}") from exc
    kind = "still" if still else "frames" if frames_as else "video"
    return RunResult(src, dst, frames, time.perf_counter() - t0, kind, area)


COLOURED_SHARE = 2.0  # per cent of a frame's pixels with a hue of their own (color.hue_variety): a colour frame


@dataclass(frozen=True)
class Look:
    """What frames sampled across a film show before it is coloured: the picture inside black bars
    (the whole frame when there are none, or with ``--bars off``), and how many of the ``sampled``
    frames are in colour already (``coloured``: hues vary across the picture; a toned or tinted B&W
    film is not)."""

    area: bars.Area
    coloured: int
    sampled: int

    @property
    def in_colour(self) -> bool:
        """A colour film: at least a third of the sampled frames in colour (a colour title card or an
        archive's logo before a B&W film is not enough)."""
        return self.sampled > 0 and 3 * self.coloured >= self.sampled


def look_at(src: Path, info, config: RunConfig) -> Look:
    """:class:`Look` from ``bars.SAMPLES`` frames sampled across the film, or across its
    ``start``/``duration`` stretch, as the network sees them (shown at video levels with
    ``--scan-transfer``); the area in stored orientation."""
    whole = bars.Area.whole_frame(info.height, info.width)
    convert = (lambda frame: to_video_levels(frame, config.scan_transfer)) if config.scan_transfer else None
    planes = [p for p in media.sample_planes(src, bars.SAMPLES, config.start, config.duration,
                                              fps=config.sequence_fps, convert=convert)
              if p.y.shape == whole.frame]  # a rescanned frame of another size is not counted
    area = chosen_area(src, config.bars, whole.frame, quarter_turns(info.rotation))
    if area is None:  # auto
        found = bars.find_in_planes(planes)
        area = found if found is not None else whole
    rows, cols = area.on_plane(*planes[0].u.shape) if planes else (slice(None), slice(None))
    coloured = sum(color.hue_variety(p.u[rows, cols], p.v[rows, cols]) >= COLOURED_SHARE for p in planes)
    return Look(area, coloured, len(planes))


def chosen_area(src: Path, setting: str, frame: tuple[int, int], turns: int = 0) -> bars.Area | None:
    """The picture area ``--bars`` names for a stored frame of ``frame`` = ``(H, W)``: the whole frame
    for "off", the given ``WxH+X+Y`` - measured on the picture as shown, i.e. the stored frame turned
    by ``turns`` quarter turns (a phone film's display rotation) - or None for "auto" (to be found).
    Raises ``SettingsError`` for an area outside the frame."""
    if setting == "auto":
        return None
    if setting == "off":
        return bars.Area.whole_frame(*frame)
    shown = frame if turns % 2 == 0 else (frame[1], frame[0])
    try:
        return bars.from_geometry(setting, shown).turned(-turns % 4)
    except ValueError as exc:
        raise SettingsError(src, f"--bars {setting}: {exc}") from None


def still_area(src: Path, L: np.ndarray, setting: str) -> bars.Area | None:
    """The picture area of a photo (L* ``(H, W)``) as ``--bars`` has it; None for the whole photo."""
    area = chosen_area(src, setting, L.shape)
    if area is None:
        area = bars.find_picture([L])
    return None if area is None or area.whole else area


def picture_area(src: Path, info, config: RunConfig) -> bars.Area:
    """Where a film's picture is inside black bars (:func:`look_at`); the whole frame with
    ``config.bars == "off"`` or when the frames do not tell."""
    return look_at(src, info, config).area


def photo_in_colour(rgb: np.ndarray) -> bool:
    """Whether a photo (sRGB float in [0, 1]) has colours of its own, not only a tone (``color.hue_variety``,
    on the photo shrunk to 512 px at most: a 24-megapixel scan is judged as fast as a frame)."""
    h, w = rgb.shape[:2]
    s = min(1.0, 512 / max(h, w))
    small = rgb if s == 1.0 else cv2.resize(rgb, (max(1, round(w * s)), max(1, round(h * s))),
                                            interpolation=cv2.INTER_AREA)
    yuv = cv2.cvtColor(np.clip(np.rint(small * 255), 0, 255).astype(np.uint8), cv2.COLOR_RGB2YUV)
    return color.hue_variety(yuv[..., 1], yuv[..., 2]) >= COLOURED_SHARE


def warn_photo_in_colour(src: Path, still: stills.Still, warn: Warn | None) -> bool:
    """Say when a photo is in colour already (its colours would be replaced); returns whether it is."""
    coloured = still.colour_source and photo_in_colour(still.rgb)
    if coloured and warn is not None:
        warn(f"{src}: the photo is in colour already; its colours are replaced by the model's")
    return coloured


def warn_in_colour(src: Path, look: Look, warn: Warn | None) -> None:
    """Say when the film is in colour already: ``run`` would replace its colours with the model's."""
    if warn is not None and look.in_colour:
        warn(f"{src}: the film is in colour already ({look.coloured} of {look.sampled} sampled frames); its "
             "colours are replaced by the model's")


_TRC_LINEAR, _TRC_SRGB = 8, 13  # AVColorTransferCharacteristic: linear light (OpenEXR...), IEC 61966-2-1


def as_decoded(info, config: RunConfig):
    """``info`` as the writer gets the frames: with ``config.scan_transfer``, 16-bit RGB at video
    levels, sRGB-coded (``to_video_levels``)."""
    if not config.scan_transfer:
        return info
    return dataclasses.replace(info, pix_fmt="rgb48le", bit_depth=max(10, min(16, info.bit_depth)),
                               color_trc=_TRC_SRGB)


def stated_transfer(src: Path, info) -> str | None:
    """How a film's pictures say they are coded when not at video levels (``ScanHeader.transfer``
    names: a DPX/Cineon header's, or "linear light" from the decoder's tag, as for OpenEXR)."""
    transfer = None
    if src.is_dir():
        transfer = sequences.scan_header(src / sequences.sequence_in(src).files[0]).transfer
    if transfer is None and info.color_trc == _TRC_LINEAR:
        transfer = sequences.TRANSFER_NAMES["linear"]
    return transfer


def warn_transfer(src: Path, transfer: str | None, asked: str | None, warn: Warn | None) -> None:
    """Say when a film's pictures are log-coded or linear light (``transfer``, see
    ``stated_transfer``) and ``--scan-transfer`` does not convert them: they would be coloured as
    stored, but the network learnt colour from video-level pictures. Also say when ``asked`` differs
    from what the pictures state."""
    if warn is None or not transfer and not asked:
        return
    stated = sequences.transfer_kind(transfer)
    if asked is None:
        warn(f"{src}: the pictures are coded as {transfer}, not video levels, and are coloured as stored (the "
             f"colour comes out weak); --scan-transfer {stated} shows them at video levels first")
    elif stated is not None and stated != asked:
        warn(f"{src}: the pictures say they are coded as {transfer}; converted as {asked}, as asked")


def _compose_frame(item: temporal.FrameItem, pix_fmt: str, turns: int, colorizer: Colorizer) -> object:
    """A smoothed FrameItem -> the output frame (source Y plane, new U/V, source timestamps)."""
    source: _Source = item.frame
    ab = np.rot90(item.ab, -turns, axes=(1, 2)) if turns else item.ab
    planes = source.planes
    if source.L_chroma is None:  # compose on the device
        area = source.area
        rows, cols = area.on_plane(*planes.u.shape[:2]) if area else (slice(None), slice(None))
        y = planes.y[area.slices()] if area else planes.y
        u, v = colorizer.compose_uv(y, ab, planes.u[rows, cols].shape, planes.matrix, planes.bit_depth,
                                    planes.full_range)
        u, v = u.astype(planes.u.dtype, copy=False), v.astype(planes.v.dtype, copy=False)
        if area:
            u = compose.around(u, planes.u, rows, cols, planes.bit_depth)
            v = compose.around(v, planes.v, rows, cols, planes.bit_depth)
    else:
        u, v = compose.compose_planes(planes, ab, source.L_chroma, source.area)
    out = media.planes_to_frame(_with_chroma(planes, u, v), pix_fmt, source.frame)
    if out.pts is None:
        out.pts, out.time_base = source.frame.pts, source.frame.time_base
    return out


def _colorize_video(src: Path, tmp: Path, info, config: RunConfig, colorizer: Colorizer,
                    progress: Progress | None, warn: Warn | None, pipelined: bool = True,
                    tracks: Sequence[Path] = (), stated: str | None = None, area: bars.Area | None = None) -> int:
    total = expected_frames(info, config)
    turns = quarter_turns(info.rotation)
    frames_as = config.frames_as
    if info.interlaced and config.codec == "prores" and warn is not None and not frames_as:
        warn(f"{src}: interlaced video: the ProRes copy keeps both fields line for line but is coded progressive "
             "(prores_ks takes the field order from frame flags PyAV cannot set); use --codec h264 or ffv1 "
             "to keep it interlaced")
    on_device = colorizer.on_device_compose
    if on_device:  # size the batch from free device memory before batching starts
        h, w = (area.height, area.width) if area else (info.height, info.width)
        colorizer.plan_batch(*colorizer.render_shape(*((h, w) if turns % 2 == 0 else (w, h))))
    if frames_as:
        # DPX pictures stay in the scans' coding (a DI pipeline's log comes back log): as stored, or
        # shown at video levels for the network (--scan-transfer) and coded back; TIFF/PNG at video levels
        recode = config.scan_transfer if frames_as == "dpx" else None
        coding = sequences.TRANSFER_NAMES[recode] if recode else None if config.scan_transfer else stated
        writer_cm = sequences.SequenceWriter(src, tmp, info, frames_as, start=config.start, duration=config.duration,
                                             warn=warn or media.default_warn, tracks=tracks, transfer=coding,
                                             recode=recode)
    else:
        writer_cm = media.VideoWriter(src, tmp, info, codec=config.codec, crf=config.crf, preset=config.preset,
                                      start=config.start, duration=config.duration, container_format=None, warn=warn,
                                      tracks=tracks)
    with writer_cm as writer:
        pix_fmt = writer.pix_fmt
        ahead = 2 * colorizer.batch_size + 2

        def compose(item: temporal.FrameItem) -> object:
            return _compose_frame(item, pix_fmt, turns, colorizer)

        frames = _frame_items(_decoded(src, config, warn), pix_fmt, colorizer, config.deflicker, turns,
                              chroma_L=not on_device, area=area)
        items = prefetch(frames, ahead) if pipelined else frames
        # the smoother's optical flow needs only L: where there are cores to spare it runs in a thread
        # of its own, off the network's path (on 2 CPU cores it only competes with the network)
        motion = temporal.motion_ahead(config.smooth, config.smooth_strength, config.cut_threshold)
        if motion is not None and pipelined and flow_thread_pays(colorizer):
            items = prefetch(_with_motion(items, motion), ahead, name="filmcolor-flow")
        # compose and encode in threads of their own: on a GPU each alone keeps up with the decoder,
        # but one after the other in one thread they were the pipeline's slowest stage
        sink = composer = None
        if pipelined:
            sink = Sink(writer.write, 8, name="filmcolor-encode")  # composed frames: a short buffer
            composer = Sink(lambda item: sink.put(compose(item)), ahead, name="filmcolor-compose")
        done = 0

        def report(upto: int) -> int:  # progress once per written frame, from the calling thread
            if progress is not None:
                for d in range(done + 1, upto + 1):
                    progress(d, total)
            return upto

        try:
            stream = temporal.smooth(batched(items, colorizer), config.smooth, config.smooth_strength,
                                     config.cut_threshold)
            for item in stream:
                if sink is None:
                    writer.write(compose(item))
                    done = report(done + 1)
                else:
                    composer.put(item)
                    done = report(sink.done)
            if sink is not None:
                composer.close()  # every frame composed and handed on (or a compose/encode error raised)
                sink.close()  # every frame written (or the encode thread's error raised here)
                done = report(sink.done)
                sink = composer = None
        finally:
            if sink is not None:  # an error or Ctrl-C: stop the encode thread (which stops compose's
                sink.abort()      # hand-over) and the compose thread before the file goes
                composer.abort()
            items.close()  # stops the decode thread at once on an error
        if done == 0:
            where = "" if config.start is None else f" after {config.start:g} s"
            raise InputError(src, f"no decodable video frames{where}")
    return done


# --- stills -----------------------------------------------------------------------------------------
def colorize_rgb(L: np.ndarray, colorizer: Colorizer, area: bars.Area | None = None) -> np.ndarray:
    """Full-resolution L* ``(H, W)`` -> coloured sRGB ``(H, W, 3)`` float32 keeping that L*; with an
    ``area``, only the picture inside black bars is coloured (grey around it)."""
    cropped = area if compose.applies(area, L.shape) else None
    L_pic = L[cropped.slices()] if cropped else L
    rh, rw = colorizer.render_shape(*L_pic.shape)
    ab = colorizer.predict_ab(compose.resize_L(L_pic, rh, rw)[None])[0]
    return compose.compose_rgb(L, ab, cropped)


def _colorize_still(src: Path, tmp: Path, dst: Path, colorizer: Colorizer, warn: Warn | None,
                    bars_setting: str = "auto") -> bars.Area | None:
    """Colour one photo into ``tmp``; returns the picture area inside black bars where there were any."""
    still = stills.read_still(src)
    if warn is not None:
        for note in still.notes:
            warn(f"{src}: {note}")
    warn_photo_in_colour(src, still, warn)
    area = still_area(src, still.L, bars_setting)
    dropped = stills.write_still(tmp, colorize_rgb(still.L, colorizer, area), still, final=dst)
    if dropped and warn is not None:
        warn(f"{dst.name}: written without the source's {'; '.join(dropped)}")
    return area


# --- preview -----------------------------------------------------------------------------------------
def _sample_frames(src: Path, info, n: int, config: RunConfig, warn: Warn | None = None) -> list[np.ndarray]:
    """``n`` evenly spaced frames (RGB uint8) of the film or of the ``start``/``duration`` stretch."""
    t0 = float(config.start or 0.0)
    total = float(info.duration) if info.duration else 0.0
    span = (total - t0) if total else 0.0
    if config.duration is not None:
        span = min(span, config.duration) if span > 0 else config.duration
    images: list[np.ndarray] = []
    turns = quarter_turns(info.rotation)
    upright = (lambda a: np.ascontiguousarray(np.rot90(a, turns))) if turns else (lambda a: a)
    if span > 0:
        for k in range(n):
            at = dataclasses.replace(config, start=t0 + span * (k + 0.5) / n, duration=None)
            frames = _decoded(src, at, warn)
            try:
                for frame in frames:
                    images.append(upright(frame.to_ndarray(format="rgb24")))
                    break
            finally:
                frames.close()
        if images:
            return images
    # no usable duration: one sequential pass, every k-th frame (or the first n)
    step = max(1, (expected_frames(info, config) or n) // n)
    frames = _decoded(src, config, warn)
    try:
        for i, frame in enumerate(frames):
            if i % step == step // 2:
                images.append(upright(frame.to_ndarray(format="rgb24")))
                if len(images) == n:
                    break
    finally:
        frames.close()
    return images


def _panel(rgb: np.ndarray) -> np.ndarray:
    h, w = rgb.shape[:2]
    if h <= PREVIEW_PANEL_HEIGHT:
        return rgb
    nw = max(1, round(w * PREVIEW_PANEL_HEIGHT / h))
    return cv2.resize(rgb, (nw, PREVIEW_PANEL_HEIGHT), interpolation=cv2.INTER_AREA)


def preview_sheet(images: list[np.ndarray], colorizer: Colorizer, area: bars.Area | None = None) -> np.ndarray:
    """RGB uint8 frames -> one sRGB float sheet: one row per frame, B&W | colour (only the picture
    inside black bars ``area`` coloured, as ``run`` colours it)."""
    rows = []
    for img in images:
        rgb = img.astype(np.float32) / 255.0
        L = color.rgb_to_lab_np(rgb)[..., 0]
        rows.append(np.hstack([_panel(compose.grey_rgb(L)), _panel(colorize_rgb(L, colorizer, area))]))
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0))) for r in rows]
    return np.vstack(rows)


def preview(src: str | Path, out_png: str | Path | None = None, n: int = 6, config: RunConfig | None = None, *,
            colorizer: Colorizer | None = None, progress: Progress | None = None,
            warn: Warn | None = None) -> RunResult:
    """Write a PNG of ``n`` evenly spaced frames, each B&W | colour side by side (a row per frame;
    panels taller than 360 px are shrunk), without encoding the film. A still gives one row."""
    config = config or RunConfig()
    if n < 1:
        raise ValueError(f"preview needs n >= 1, got {n}")
    src = Path(src)
    check_input(src)
    still = media.is_still_path(src)
    info = None
    if not still:
        info = media.probe(src, config.sequence_fps)
        still = bool(info.is_still)
    dst = Path(out_png) if out_png is not None else default_preview_output(src)
    check_output(src, dst, config.overwrite)
    if problem := stills.output_problem(dst):
        raise OutputError(dst, problem)
    colorizer = colorizer or Colorizer.from_config(config)
    t0 = time.perf_counter()
    if still:
        photo = stills.read_still(src)
        warn_photo_in_colour(src, photo, warn)
        images = [np.rint(photo.rgb * 255).astype(np.uint8)]
        area = still_area(src, photo.L, config.bars)
    else:
        info = as_decoded(info, config)
        images = _sample_frames(src, info, n, config, warn)
        if not images:
            raise InputError(src, "no decodable video frames")
        look = look_at(src, info, config)
        warn_in_colour(src, look, warn)
        area = look.area.turned(quarter_turns(info.rotation))  # the images are upright
    area = None if area is None or area.whole else area
    sheet = preview_sheet(images, colorizer, area)
    with atomic_output(dst) as tmp:
        stills.write_image(tmp, sheet, 8, final=dst)
    if progress is not None:
        progress(len(images), len(images))
    return RunResult(src, dst, len(images), time.perf_counter() - t0, "preview", area)
