"""One long film on many workers: split at keyframes, colour the segments in parallel, join.

A folder of scans is planned from its file list instead (:func:`plan_scans`: every picture is a
safe cut), and each segment is read in place as a stretch of the reel rather than remuxed.

Plan (``plan_segments``): the source's video packets are scanned once (demux only, no decoding).
A *safe cut* is a keyframe packet that every earlier packet (in decode order) precedes in display
order and no later packet does, so the packets from one safe cut to the next decode to exactly the
frames between them; at a safe cut the decode index equals the display index. The film's frames
``[0, N)`` are split into ``n`` kept ranges ``[a_i, b_i)`` at the safe cuts nearest to ``i * N / n``
(fewer segments when there are not enough keyframes). Segment ``i`` decodes from the last safe cut
at least ``overlap`` frames before ``a_i`` so the temporal smoother has settled by ``a_i``: those
lead-in frames are coloured and dropped. For a smoother that looks ahead (anything but ``off`` and
``ema``, which are causal) the segment also runs on ``overlap`` frames past ``b_i``, to a safe cut.

Work (``colorize_segment``, in any process or Ray task): stream-copy the segment's packets into a
hidden ``.mkv`` beside the output (``.nut`` for DV, the film's own container for DNxHD), colour it
with :func:`filmcolor.pipeline.colorize_file` into a lossless FFV1 intermediate (``.nut``; same
pipeline, same settings, so the pixels are those a single run computes, up to the smoother's state
at the lead-in).

Join (in the caller): decode the intermediates in order, drop each lead-in (and tail), give every
kept frame the source frame's own pts and time base, and encode them with one ``VideoWriter`` with
the run's codec settings, which copies the audio and subtitle packets from the source exactly as
a single run does. So frame count, timestamps and audio packets equal a single run's; the colours
equal it up to codec rounding away from the seams. The output is written to a hidden temp file in
the target folder and renamed into place; the intermediates live in a hidden
``.<name>.segwork-<key>`` folder beside it (``work_folder``), removed once the join succeeds and kept
otherwise: a run started again with the same input, settings and model colours only the segments
still missing (a long film on a CPU need not start over after a Ctrl-C or a crash).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import time
from bisect import bisect_right
from glob import escape as glob_escape
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Sequence

import av
from av.video.frame import PictureType

from . import companions, look, media, outputs, transfer
from .config import RunConfig
from .errors import InputError, OutputError, ProcessingError

OVERLAP = 12  # frames of lead-in: the ema smoother's memory decays as strength**n (0.5**12 ~ 2e-4)
_CAUSAL_SMOOTHERS = ("off", "ema")


@dataclass(frozen=True)
class Segment:
    """Frames ``[keep_start, keep_end)`` (display indices) are kept; ``[start, end)`` are decoded,
    from the packets with decode indices ``[start, end)`` (both ends are safe cuts)."""

    index: int
    start: int
    keep_start: int
    keep_end: int
    end: int
    start_pts: int  # pts of the first packet to copy (the keyframe at ``start``)

    @property
    def lead(self) -> int:
        return self.keep_start - self.start

    @property
    def kept(self) -> int:
        return self.keep_end - self.keep_start


@dataclass(frozen=True)
class SegmentPlan:
    frames: int
    pts: list[int]  # display-order pts of every frame (the source's time base)
    time_base: Fraction
    segments: list[Segment]


def scan_packets(src: str | Path) -> tuple[list[tuple[int, bool]], Fraction]:
    """(pts, is_keyframe) of every video packet in decode order, and the stream's time base."""
    with av.open(str(src), "r", metadata_errors="ignore") as container:
        stream = media.film_stream(container)
        tb = Fraction(stream.time_base)
        packets = []
        for p in container.demux(stream):
            if p.size == 0:  # flush packet
                continue
            if p.pts is None:
                raise InputError(src, "video packets without timestamps cannot be split into segments")
            packets.append((int(p.pts), bool(p.is_keyframe)))
    return packets, tb


def safe_cuts(packets: list[tuple[int, bool]]) -> list[int]:
    """Decode indices of the safe cuts (see the module docstring), 0 and ``len(packets)`` included."""
    n = len(packets)
    suffix_min = [0] * (n + 1)
    suffix_min[n] = 1 << 62
    for j in range(n - 1, -1, -1):
        suffix_min[j] = min(packets[j][0], suffix_min[j + 1])
    cuts = [0]
    prefix_max = -(1 << 62)
    for j, (pts, key) in enumerate(packets):
        if j and key and prefix_max < pts and suffix_min[j] == pts:
            cuts.append(j)
        prefix_max = max(prefix_max, pts)
    cuts.append(n)
    return cuts


def plan_segments(src: str | Path, n: int, overlap: int = OVERLAP, tail: int = 0) -> SegmentPlan:
    """Split ``src`` into at most ``n`` segments at safe cuts (see the module docstring)."""
    packets, tb = scan_packets(src)
    total = len(packets)
    pts_sorted = sorted(p for p, _ in packets)
    if len(set(pts_sorted)) != total:
        raise InputError(src, "video packets with repeated timestamps cannot be split into segments")
    segments = _cut(safe_cuts(packets), total, n, overlap, tail, [p for p, _ in packets])
    return SegmentPlan(frames=total, pts=pts_sorted, time_base=tb, segments=segments)


def plan_scans(src: str | Path, n: int, fps: Fraction, overlap: int = OVERLAP, tail: int = 0) -> SegmentPlan:
    """:func:`plan_segments` for a folder of scans, from its file list alone: every picture is whole,
    so every one is a safe cut, and reading a feature's pictures only to plan would cost as much as
    colouring them. Frames are stamped 0, 1, 2... at ``1/fps``, as FFmpeg's image2 reader stamps them."""
    from .sequences import sequence_in

    total = sequence_in(src).count
    frames = list(range(total))
    return SegmentPlan(frames=total, pts=frames, time_base=1 / Fraction(fps),
                       segments=_cut(frames + [total], total, n, overlap, tail, frames))


def _cut(cuts: list[int], total: int, n: int, overlap: int, tail: int, decode_pts: list[int]) -> list[Segment]:
    """At most ``n`` segments of ``total`` frames, cut at the safe ``cuts`` nearest to even shares,
    each decoded from the safe cut ``overlap`` frames before it (and ``tail`` frames past it)."""
    inner = cuts[1:-1]
    bounds = [0]
    for i in range(1, n):
        target = i * total / n
        if not inner:
            break
        best = min(inner, key=lambda c: abs(c - target))
        if best > bounds[-1]:
            bounds.append(best)
    bounds.append(total)
    segments = []
    for i, (a, b) in enumerate(zip(bounds, bounds[1:])):
        start = cuts[bisect_right(cuts, max(0, a - overlap)) - 1]
        end = b if tail <= 0 else next((c for c in cuts if c >= min(total, b + tail)), total)
        segments.append(Segment(i, start, a, b, end, decode_pts[start] if start < total else 0))
    return segments


def remux_segment(src: str | Path, dst: str | Path, seg: Segment, fmt: str | None = None) -> int:
    """Copy the video packets with decode indices ``[seg.start, seg.end)`` of ``src`` into ``dst``
    (no audio), in muxer ``fmt`` (default: Matroska, or NUT for a ``.nut`` name). Returns the number
    of packets copied; raises ValueError when the muxer cannot hold the codec (Matroska: DV;
    Matroska and NUT: DNxHD). The demuxer seeks to the segment's keyframe, and reads from the start
    instead where that seek overshoots it (MPEG program and transport streams seek by bytes)."""
    fmt = fmt or ("nut" if Path(dst).suffix == ".nut" else "matroska")
    copied = _copy_packets(src, dst, seg, fmt, seek=seg.start > 0)
    if copied == 0 and seg.start > 0:
        copied = _copy_packets(src, dst, seg, fmt, seek=False)
    if copied != seg.end - seg.start:
        raise ProcessingError(src, f"segment {seg.index}: copied {copied} of {seg.end - seg.start} packets")
    return copied


def _copy_packets(src: str | Path, dst: str | Path, seg: Segment, fmt: str, seek: bool) -> int:
    """``remux_segment``'s one pass: the packets from the one stamped ``seg.start_pts`` on (after a
    seek to it when ``seek``), at most ``seg.end - seg.start`` of them; how many were copied."""
    copied = 0
    with av.open(str(src), "r", metadata_errors="ignore") as inp, \
            av.open(str(dst), "w", format=fmt, options={"avoid_negative_ts": "disabled"}) as out:
        stream = media.film_stream(inp)
        ostream = out.add_stream_from_template(stream)
        if seek:  # (where it cannot, from the start: the packets before the segment's are skipped)
            media.seek_or_rewind(inp, seg.start_pts, stream, backward=True, any_frame=False)
        started = seg.start == 0
        for packet in inp.demux(stream):
            if packet.size == 0:
                continue
            if not started:
                if packet.pts != seg.start_pts:
                    continue
                started = True
            packet.stream = ostream
            out.mux(packet)
            copied += 1
            if copied == seg.end - seg.start:
                break
    return copied


def colorize_segment(src: str, seg: Segment, work: str, config: RunConfig, area: Any = None) -> dict[str, Any]:
    """Worker side: remux segment ``seg`` of ``src`` into ``work`` and colour it losslessly (FFV1),
    inside the whole film's black bars ``area`` (a ``bars.Area``; every segment the same).
    Returns ``{"path", "frames", "seconds", "warnings"}``; raises on failure."""
    from .batch import build_colorizer
    from .pipeline import colorize_file

    t0 = time.perf_counter()
    work_dir = Path(work)
    coloured = work_dir / _piece_name(seg)  # NUT: any time base, FFV1, no muxer options needed
    warnings: list[str] = []
    if Path(src).is_dir():  # scans: the segment's pictures are read in place, as a stretch of the reel
        tb = media.probe(src, config.sequence_fps).time_base
        seg_config = dataclasses.replace(config, codec="ffv1", overwrite=True, start=float(seg.start * tb),
                                         duration=float((seg.end - seg.start) * tb))
        result = colorize_file(src, coloured, seg_config, colorizer=build_colorizer(config), warn=warnings.append,
                               area=area)
        return {"path": str(coloured), "frames": int(result.frames), "seconds": time.perf_counter() - t0,
                "warnings": warnings}
    piece = work_dir / f"src{seg.index:04d}.mkv"
    try:
        remux_segment(src, piece, seg)
    except ValueError:  # a codec Matroska cannot hold (DV): NUT holds most; the film's own container, the rest
        piece.unlink(missing_ok=True)
        piece = piece.with_suffix(".nut")
        try:
            remux_segment(src, piece, seg)
        except ValueError:  # DNxHD
            piece.unlink(missing_ok=True)
            piece = piece.with_suffix(Path(src).suffix)
            with av.open(str(src), "r", metadata_errors="ignore") as inp:
                own = inp.format.name.split(",")[0]
            remux_segment(src, piece, seg, fmt=own)
    seg_config = dataclasses.replace(config, codec="ffv1", overwrite=True, start=None, duration=None)
    try:
        result = colorize_file(piece, coloured, seg_config, colorizer=build_colorizer(config), warn=warnings.append,
                               area=area)
    finally:
        piece.unlink(missing_ok=True)
    return {"path": str(coloured), "frames": int(result.frames), "seconds": time.perf_counter() - t0,
            "warnings": warnings}


def _seg_frames(path: str | Path):
    with av.open(str(path), "r") as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        yield from container.decode(stream)


def join_segments(src: str | Path, dst: Path, plan: SegmentPlan, pieces: list[str], config: RunConfig,
                  warn: Callable[[str], None] | None = None, tracks: Sequence[Path] = ()) -> int:
    """Encode the kept frames of ``pieces`` into ``dst`` (written in place; the caller renames) with
    the source's timestamps and audio, and the streams of the added ``tracks`` (``VideoWriter``).
    Returns the number of frames written."""
    from .media import VideoWriter, probe

    info = transfer.as_decoded(probe(src, config.sequence_fps), config)  # the pieces are at video levels where
    # the scans were converted
    written = 0
    with VideoWriter(src, dst, info, codec=config.codec, crf=config.crf, preset=config.preset, warn=warn,
                     tracks=tracks) as writer:
        for seg, piece in zip(plan.segments, pieces):
            got = 0
            for k, frame in enumerate(_seg_frames(piece)):
                if k < seg.lead:
                    continue
                if k >= seg.lead + seg.kept:
                    break
                if frame.format.name != writer.pix_fmt:
                    frame = frame.reformat(format=writer.pix_fmt)
                frame.pts, frame.time_base = plan.pts[seg.keep_start + got], plan.time_base
                frame.pict_type = PictureType.NONE  # FFV1 frames say "I": x264 would obey and go all-intra
                writer.write(frame)
                got += 1
            if got != seg.kept:
                raise ProcessingError(src, f"segment {seg.index} gave {got} of {seg.kept} frames")
            written += got
    return written


def work_folder(src: Path, dst: Path, config: RunConfig, plan: SegmentPlan) -> Path:
    """The hidden folder beside ``dst`` that holds the coloured segments until the join:
    ``.<name>.segwork-<key>``, the key a digest of the input (fingerprint), the settings and model
    (as a batch's manifest hashes them) and the plan, so a run interrupted part-way finds the
    segments it finished - and only when they are still the ones it would colour."""
    from .batch import fingerprint, model_hash, settings_hash

    bounds = [(g.start, g.keep_start, g.keep_end, g.end) for g in plan.segments]
    key = hashlib.sha256(json.dumps([fingerprint(src), settings_hash(config), model_hash(config), bounds],
                                    sort_keys=True).encode()).hexdigest()[:16]
    return dst.parent / f".{outputs.temp_name(dst.name)}.segwork-{key}"  # (a long name cut: it must fit too)


def colorize_segmented(src: str | Path, dst: str | Path, config: RunConfig, *, segments: int,
                       runner: Any = None, overlap: int = OVERLAP,
                       warn: Callable[[str], None] | None = None,
                       progress: Callable[[int, int], None] | None = None, tracks: Sequence[Path] = ()) -> Any:
    """Colour ``src`` into ``dst`` in ``segments`` parallel parts on ``runner`` (a
    :class:`filmcolor.batch.Runner`; in this process when None) and join them (module docstring).
    Returns a ``pipeline.RunResult``. Falls back to a single run for stills, image sequences,
    pictures out (``frames_as``), a stretch (``config.start``/``duration``) and when the film has a
    single keyframe.

    Resumable: each coloured segment is kept in :func:`work_folder` until the join succeeds, so a
    run stopped part-way (Ctrl-C, a crash, a full disk) and started again with the same input,
    settings and model colours only the segments still missing. ``progress(frames, total)`` is
    called as segments finish; ``tracks`` are sound or subtitle files added at the join."""
    from .batch import InlineRunner
    from .media import is_still_path
    from .pipeline import RunResult, colorize_file

    warn = warn or (lambda message: None)
    src, dst = Path(src), Path(dst)
    runner = runner or InlineRunner()
    if dst.exists() and not config.overwrite:
        raise OutputError(dst, "exists (use --overwrite)")
    if dst.resolve() == src.resolve():
        raise OutputError(dst, "would overwrite the input")
    outputs.check_added_tracks(dst, [Path(t) for t in tracks])
    t0 = time.perf_counter()
    plan = None
    if segments > 1 and not is_still_path(src) and config.start is None \
            and config.duration is None and not config.frames_as:
        from .media import probe

        info = probe(src, config.sequence_fps)  # a damaged file fails here, with the pipeline's message
        causal = config.smooth in _CAUSAL_SMOOTHERS and not config.deflicker  # deflicker looks ahead
        tail = 0 if causal else overlap
        plan = (plan_scans(src, segments, info.fps, overlap, tail) if src.is_dir()
                else plan_segments(src, segments, overlap, tail))
        if len(plan.segments) < segments:
            warn(f"{src}: only {len(plan.segments)} segment(s): the film has too few keyframes for {segments}")
    elif segments > 1 and not is_still_path(src):  # asked for parts (to resume a stop): say why there are none
        why = ("a stretch (--start/--duration)" if config.start is not None or config.duration is not None
               else "pictures out (--frames-as)")
        warn(f"{src}: {why} is coloured in one part, not {segments}: a stopped run starts it again")
    if plan is None or len(plan.segments) < 2:
        from .batch import build_colorizer

        return colorize_file(src, dst, config, colorizer=build_colorizer(config), warn=warn, tracks=tracks)

    tracks = companions.film_tracks(src, tracks, warn)
    seen = look.look_at(src, transfer.as_decoded(info, config), config)  # on the whole film, for every segment
    look.warn_in_colour(src, seen, warn)
    area = seen.area
    dst.parent.mkdir(parents=True, exist_ok=True)
    work = work_folder(src, dst, config, plan)
    for old in dst.parent.glob(f".{glob_escape(outputs.temp_name(dst.name))}.segwork-*"):  # other inputs or settings: no use
        if old != work and old.is_dir():
            shutil.rmtree(old, ignore_errors=True)
    work.mkdir(exist_ok=True)
    done = {seg.index: work / _piece_name(seg) for seg in plan.segments if (work / _piece_name(seg)).is_file()}
    if done:
        warn(f"{src}: resuming: {len(done)} of {len(plan.segments)} segments were coloured by an earlier run")
    futures: dict[int, Any] = {}
    finished = False

    def report() -> None:
        if progress is not None:
            progress(sum(g.kept for g in plan.segments if g.index in done), plan.frames)

    report()
    try:
        for seg in plan.segments:
            if seg.index not in done:
                futures[seg.index] = runner.submit(colorize_segment, str(src), seg, str(work), config, area)
            for i, f in list(futures.items()):  # in this process, each finishes as it is submitted
                if f.done() and i not in done:
                    done[i] = _finished(f, warn)
                    report()
        for i, f in futures.items():
            if i not in done:
                done[i] = _finished(f, warn)
                report()
        with outputs.atomic_output(dst) as tmp:  # hidden temp beside dst, renamed when complete
            frames = join_segments(src, tmp, plan, [str(done[g.index]) for g in plan.segments], config, warn,
                                   tracks)
            if frames != plan.frames:
                raise ProcessingError(src, f"joined {frames} frames, the film has {plan.frames}")
        finished = True
    except BaseException:
        runner.cancel([f for f in futures.values() if not f.done()])
        kept = sum(1 for g in plan.segments if (work / _piece_name(g)).is_file())
        if kept:
            warn(f"{src}: {kept} of {len(plan.segments)} coloured segments kept in {work}; the same command "
                 "resumes from them")
        raise
    finally:
        if finished:
            shutil.rmtree(work, ignore_errors=True)
    return RunResult(src, dst, frames, time.perf_counter() - t0, "video", None if area.whole else area)


def _piece_name(seg: Segment) -> str:
    return f"col{seg.index:04d}.nut"


def _finished(future: Any, warn: Callable[[str], None]) -> Path:
    outcome = future.result()
    for w in outcome["warnings"]:
        warn(w)
    return Path(outcome["path"])
