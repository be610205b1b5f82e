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

Before decoding, ``outputs`` checks the input and the output path, ``companions`` gathers the sound
and subtitle files that go in, and ``look.look_at`` finds the picture inside black bars (only it is
coloured) and whether the film is in colour already. Output is atomic (``outputs.atomic_output``): a
hidden temporary file beside ``dst`` renamed over it only when complete, deleted on any exception,
KeyboardInterrupt included. The input is never written to.

``progress`` is a callable ``(done_frames, total_frames_or_None)``; ``warn`` a callable ``(message)``.
This module never imports click or rich, so it runs the same from the CLI, Python or a Ray task.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence, TypeVar

import av
import numpy as np

from . import bars, companions, compose, look, media, outputs, sequences, stills, temporal, transfer
from .config import RunConfig
from .errors import FilmcolorError, InputError, OutputError, ProcessingError
from .inference import Colorizer, cpu_threads

Progress = Callable[[int, "int | None"], None]
Warn = Callable[[str], None]
T = TypeVar("T")

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
            frames = (transfer.to_video_levels(frame, config.scan_transfer) for frame in frames)
        yield from frames
    except FilmcolorError:
        raise
    except (av.FFmpegError, EOFError) as exc:
        raise InputError(src, f"cannot decode video: {exc}") from exc


def _with_chroma(planes, u: np.ndarray, v: np.ndarray):
    return media.Planes(y=planes.y, u=u, v=v, bit_depth=planes.bit_depth, full_range=planes.full_range,
                        matrix=planes.matrix)


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
    asked_tracks = [Path(t) for t in tracks]
    outputs.check_input(src)
    info = media.probe_film(src, config.sequence_fps)
    still = info is None
    if not still:
        stated = transfer.stated_transfer(src, info)
        transfer.warn_transfer(src, stated, config.scan_transfer, warn)
        info = transfer.as_decoded(info, config)
        if config.start is not None and info.duration and config.start >= info.duration:
            raise InputError(src, f"--start {config.start:g} s is past the end of the film ({info.duration:.2f} s)")
        asked, config = config.start, config.on_timeline(info.start_time)  # from here on, the stream's clock
        tracks = companions.film_tracks(src, tracks, warn)
        if media.has_alpha(info.pix_fmt) and warn is not None:  # (a photo keeps its alpha: stills.py)
            warn(f"{src}: its pictures have an alpha channel ({info.pix_fmt}); the coloured film is opaque")
    elif tracks:
        raise OutputError(src, "is a photo; a photo takes no sound or subtitle track")
    if frames_as is not None:
        if still:
            raise OutputError(src, "is a photo; --frames-as writes the pictures of a film")
        dst = Path(dst) if dst is not None else outputs.default_frames_output(src)
        outputs.check_frames_output(src, dst, config.overwrite, frames_as)
        outputs.check_room_for_pictures(dst, info, config, warn)
    else:
        dst = Path(dst) if dst is not None else outputs.default_output(src, still=still, codec=config.codec)
        outputs.check_output(src, dst, config.overwrite)
        problem = stills.output_problem(dst) if still else media.film_output_problem(dst, config.codec)
        if problem:
            raise OutputError(dst, problem)
        outputs.check_added_tracks(dst, asked_tracks)
        lag = None if still else outputs.avi_lag(dst, config.codec)
        if lag and warn is not None:
            warn(f"{dst}: {lag}")
    if colorizer is None:
        colorizer = Colorizer.from_config(config)
        if warn is not None:
            colorizer.on_oom = lambda old, new: warn(f"out of memory at batch size {old}; retrying at {new}")
    t0 = time.perf_counter()
    if not still and area is None:  # a segment of a film gets the whole film's area, found (and told) once
        seen = look.look_at(src, info, config)
        look.warn_in_colour(src, seen, warn)
        area = seen.area
    if not still:
        area = None if area.whole else area
    try:
        with (outputs.atomic_folder(dst) if frames_as else outputs.atomic_output(dst)) as tmp:
            if still:
                area = _colorize_still(src, tmp, dst, colorizer, warn, config.bars)
                frames = 1
                if progress is not None:
                    progress(1, 1)
            else:
                frames = _colorize_video(src, tmp, info, config, colorizer, progress, warn, pipelined, tracks,
                                         stated, area, asked)
    except FilmcolorError as exc:
        if exc.path is None:  # e.g. out of memory at batch 1: say which film
            raise type(exc)(src, exc.cause) from exc
        raise
    except (OSError, av.FFmpegError) as exc:  # disk full, folder gone, the encoder or muxer refusing...
        # a failure part-way (exit 3), not bad input nor a usage error: the same command may work with more room
        raise ProcessingError(dst, f"cannot write: {getattr(exc, 'strerror', None) or exc}") from exc
    kind = "still" if still else "frames" if frames_as else "video"
    return RunResult(src, dst, frames, time.perf_counter() - t0, kind, area)


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
                    tracks: Sequence[Path] = (), stated: str | None = None, area: bars.Area | None = None,
                    asked: float | None = None) -> int:
    """Colour a film (``config`` on the stream's own clock: ``RunConfig.on_timeline``; ``asked``: the
    ``--start`` as given, for messages) into ``tmp``; returns the frames written."""
    total = outputs.expected_frames(info, config)
    turns = media.quarter_turns(info.rotation)
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
            where = "" if asked is None else f" after {asked:g} s"
            raise InputError(src, f"no decodable video frames{where}")
    return writer.frames_written  # less than ``done`` where frames going back in time were left out


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
    look.warn_photo_in_colour(src, still, warn)
    area = look.still_area(src, still.L, bars_setting)
    dropped = stills.write_still(tmp, colorize_rgb(still.L, colorizer, area), still, final=dst)
    if dropped and warn is not None:
        warn(f"{dst.name}: written without the source's {'; '.join(dropped)}")
    return area


