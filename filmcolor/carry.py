"""What a coloured film keeps of its source besides the picture: sound, subtitles, labels, cover.

``Carried(src, info, out, video, start, end, warn)`` opens a second demuxer on the source and, before
the output's header is written, adds to ``out``:

- every audio and subtitle stream as a packet copy. Each copy is first tried on a scratch muxer with
  one of its packets, since some muxers refuse a codec only when writing the header (Opus in MOV)
  or the end of the file (unordered PCM in MP4), and MPEG-TS takes anything and loses what it does
  not know. Audio a container refuses is transcoded to AAC; text subtitles change form (SubRip <->
  mov_text, see ``subtitles``); anything else is dropped, each with a ``warn``;
- the film's labels (title and other tags, each stream's language, name and flags, timecode,
  chapters, attachments; see ``tags``), cut to the written stretch ``[start, end)``;
- its cover picture (Matroska: an attachment; MP4: a cover stream).

``write_covers()`` muxes the cover (once every stream of the output exists: it writes the header);
``pump(until)`` then muxes the copied packets up to ``until`` seconds on the output's timeline (the
writer calls it before each frame, so streams interleave by time); ``finish()`` muxes the rest and
flushes the transcoders; ``close()`` closes the demuxer. A second picture stream is not carried
(only one is coloured), which ``warn`` says. ``tracks_only=True`` carries just the sound and
subtitle streams of an added file (a scanned optical track, an .srt), none of its labels.
"""

from __future__ import annotations

import io
import math
import re
from fractions import Fraction
from pathlib import Path
from typing import Callable

import av

from . import subtitles, tags


#: sample format each fallback encoder takes, and its frame size (None: any)
_FALLBACKS = {"aac": ("fltp", 1024), "pcm_s16le": ("s16", None), "pcm_s24le": ("s32", None)}


class _Transcoder:
    """Decode one audio stream and re-encode it as ``codec`` (for a codec the output cannot hold):
    AAC, or PCM (``pcm_s16le``/``pcm_s24le``) for sound that decodes to PCM exactly (A-law, ADPCM...)."""

    def __init__(self, in_stream, out, codec: str = "aac"):
        self.in_stream = in_stream
        rate = in_stream.codec_context.sample_rate or 48000
        layout = _ordered(in_stream.codec_context.layout) if in_stream.codec_context.layout else "stereo"
        sample_format, frame_size = _FALLBACKS[codec]
        self.stream = out.add_stream(codec, rate=rate)
        self.stream.layout = layout
        self.stream.format = sample_format
        self.stream.time_base = Fraction(1, rate)
        self.rate = rate
        self.resampler = av.AudioResampler(format=sample_format, layout=layout, rate=rate, frame_size=frame_size)
        self.next_pts: int | None = None

    def packets(self, packet, shift_s: Fraction):
        frames = [] if packet is None else self.in_stream.decode(packet)
        if packet is None:
            frames = self.in_stream.decode(None)
        out = []
        for frame in frames:
            if self.next_pts is None and frame.pts is not None:
                self.next_pts = max(0, round((frame.pts * frame.time_base - shift_s) * self.rate))
            for rf in self.resampler.resample(frame):
                out += self._encode(rf)
        if packet is None:
            for rf in self.resampler.resample(None):
                out += self._encode(rf)
            out += self.stream.encode(None)
        return out

    def _encode(self, frame):
        frame.pts = self.next_pts or 0
        frame.time_base = Fraction(1, self.rate)
        self.next_pts = frame.pts + frame.samples
        return self.stream.encode(frame)


def _exact_pcm(fmt: str, stream) -> str | None:
    """The PCM codec that holds ``stream``'s sound exactly where muxer ``fmt`` cannot hold the stream
    itself: sound that decodes to PCM without loss (PCM in other forms - A-law, mu-law, big-endian,
    unsigned 8 bit - and ADPCM, as old digitisations hold it), as 16 or 24 bits by the decoded depth;
    None for lossy codecs (they go to AAC: PCM would only be larger) or where ``fmt`` takes no PCM."""
    name = stream.codec_context.name if stream.codec_context is not None else ""
    if not name.startswith(("pcm_", "adpcm_")) or fmt == "mpegts":
        return None
    depth = stream.codec_context.format.bytes if stream.codec_context.format is not None else 2
    codec = "pcm_s16le" if depth <= 2 else "pcm_s24le"
    layout = _ordered(stream.codec_context.layout) if stream.codec_context.layout else "stereo"
    rate = stream.codec_context.sample_rate or 48000

    def pcm_stream(scratch):
        s = scratch.add_stream(codec, rate=rate)
        s.layout = layout
        return s

    return codec if muxer_takes(fmt, pcm_stream) else None


# FFmpeg's MPEG-TS muxer writes any other codec as a private data stream that players do not play:
# a "copied" sound track that is in fact lost
_TS_CODECS = frozenset({"aac", "aac_latm", "mp2", "mp3", "ac3", "eac3", "dts", "truehd", "opus", "s302m",
                        "pcm_bluray", "dvb_subtitle", "dvb_teletext", "hdmv_pgs_subtitle"})
# FFmpeg's default layout per channel count, for audio whose channel order the file leaves unsaid
_DEFAULT_LAYOUTS = {1: "mono", 2: "stereo", 3: "2.1", 4: "4.0", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}


def _ordered(layout) -> str:
    """A channel layout's name; where the file leaves the order unsaid ("2 channels", as Matroska
    stores PCM), FFmpeg's default layout for that many channels. MP4's PCM writer refuses an
    unordered layout (and only when it finishes the file), as does the AAC encoder."""
    if layout.name.endswith("channels"):
        return _DEFAULT_LAYOUTS.get(len(layout.channels), layout.name)
    return layout.name


#: WAVE_FORMAT_MPEG_HEAAC: the only format tag under which FFmpeg's AVI muxer takes AAC in ADTS frames
#: (AAC without a decoder config, as AVIs usually hold it); under AVI's plain AAC tag it refuses them
ADTS_AVI_TAG = "\x10\x16\x00\x00"


def _copy_stream(out, stream):
    """A packet-copy output stream for ``stream`` (audio with its channel order stated: ``_ordered``;
    ADTS AAC into AVI under ``ADTS_AVI_TAG``)."""
    copy = out.add_stream_from_template(stream)
    if stream.type == "audio" and (name := _ordered(stream.codec_context.layout)) != stream.codec_context.layout.name:
        copy.codec_context.layout = name
    if (out.format.name == "avi" and stream.type == "audio" and stream.codec_context.name == "aac"
            and not stream.codec_context.extradata):
        copy.codec_context.codec_tag = ADTS_AVI_TAG
    return copy


def _muxer_accepts(fmt: str, stream, sample) -> bool:
    """Whether muxer ``fmt`` takes a packet copy of ``stream`` (with one of its packets, ``sample``,
    or None): see :func:`muxer_takes`. MPEG-TS takes anything and loses what it does not know."""
    name = stream.codec_context.name if stream.codec_context is not None else ""
    if fmt == "mpegts" and name not in _TS_CODECS:
        return False
    return muxer_takes(fmt, lambda scratch: _copy_stream(scratch, stream), sample)


def muxer_takes(fmt: str, add_stream: Callable, sample=None) -> bool:
    """Whether muxer ``fmt`` writes a whole file holding the stream ``add_stream(container)`` adds
    (and, given, one ``sample`` packet in it), tried on a scratch buffer. Some muxers refuse a codec
    only when writing the header (Opus in MOV) or the end of the file (unordered PCM in MP4), which
    would fail a whole film after the fact."""
    scratch = None
    try:
        scratch = av.open(io.BytesIO(), "w", format=fmt)
        stream = add_stream(scratch)
        scratch.start_encoding()
        if sample is not None:
            packet = av.Packet(bytes(sample))
            packet.stream, packet.time_base = stream, sample.time_base
            packet.pts = packet.dts = 0
            scratch.mux(packet)
        scratch.close()  # writes the trailer: errors here count
        scratch = None
        return True
    except (ValueError, av.error.FFmpegError):
        return False
    finally:
        if scratch is not None:
            try:
                scratch.close()
            except (ValueError, av.error.FFmpegError):
                pass


def subtitles_left_out(track: str | Path, fmt: str) -> list[str]:
    """The subtitle streams of an added file that muxer ``fmt`` could neither take as they are nor
    in another text form (SubRip into MPEG-TS or AVI, bitmaps outside Matroska), named as
    ``"stream 0 (subrip)"``: an added track the user asked for, left out only after the colouring."""
    with av.open(str(track), "r", metadata_errors="ignore") as c:
        streams = [s for s in c.streams if s.type == "subtitle"]
        samples = _first_packets(Path(track), streams)
        out = []
        for s in streams:
            name = s.codec_context.name if s.codec_context is not None else "unknown codec"
            text_form = name in subtitles.TEXT_CODECS and subtitles.TARGETS.get(fmt)
            if not text_form and not _muxer_accepts(fmt, s, samples.get(s.index)):
                out.append(f"stream {s.index} ({name})")
    return out


def _first_packets(path: Path, streams) -> dict[int, object]:
    """The first non-empty packet of each of ``streams`` (by index), read from a fresh demuxer."""
    wanted, found = {s.index for s in streams}, {}
    if not wanted:
        return found
    with av.open(str(path), "r", metadata_errors="ignore") as c:
        try:
            for n, packet in enumerate(c.demux([c.streams[i] for i in sorted(wanted)])):
                if packet.size and packet.stream.index not in found:
                    found[packet.stream.index] = packet
                if len(found) == len(wanted) or n > 5000:
                    break
        except av.error.FFmpegError:
            pass
    return found


_PCM = re.compile(r"^pcm_(?:[suf](\d+)(?:le|be)?|alaw|mulaw)$")


def _pcm_frame_bytes(stream) -> int | None:
    """Bytes per sample frame of an interleaved PCM stream (its packets can be cut at any sample),
    else None."""
    cc = stream.codec_context
    m = _PCM.match(cc.name if cc is not None else "")
    if m is None or not cc.channels:
        return None
    return (int(m[1]) // 8 if m[1] else 1) * cc.channels


def _pcm_cut(packet, frame_bytes: int, *, skip: Fraction | None = None, keep: Fraction | None = None):
    """A PCM ``packet`` without its first ``skip`` seconds, or with only its first ``keep``; same
    stream, timestamps moved with the samples."""
    rate = packet.stream.codec_context.sample_rate
    data = bytes(packet)
    samples = len(data) // frame_bytes
    first = min(samples, math.ceil(skip * rate)) if skip else 0
    last = min(samples, math.ceil(keep * rate)) if keep is not None else samples
    cut = av.Packet(data[first * frame_bytes:last * frame_bytes])
    shift = round(Fraction(first, rate) / packet.time_base)
    cut.stream, cut.time_base = packet.stream, packet.time_base
    cut.pts = None if packet.pts is None else packet.pts + shift
    cut.dts = None if packet.dts is None else packet.dts + shift
    cut.duration = round(Fraction(last - first, rate) / packet.time_base)
    return cut


MAX_SOUND_LEAD = 600  # s: a BWF time reference further than this from the picture's timecode is ignored
_PICTURE_TYPES = {"mjpeg": (".jpg", "image/jpeg"), "png": (".png", "image/png"), "bmp": (".bmp", "image/bmp")}


def _label(dst, src, *, reencoded: bool) -> None:
    """Give output stream ``dst`` the tags and disposition flags of source stream ``src``."""
    dst.metadata.update(tags.carried_tags(src.metadata, reencoded=reencoded))
    dst.disposition = src.disposition & ~av.stream.Disposition.attached_pic


class Carried:
    """See the module docstring. ``video`` is the output's picture stream (it takes the film's own
    stream tags and flags; None for a file of sound and subtitles alone, beside an image sequence);
    ``start``/``end`` are seconds on the source's timeline (None: open)."""

    def __init__(self, src: str | Path, info, out, video, start: Fraction | None, end: Fraction | None,
                 warn: Callable[[str], None], *, tracks_only: bool = False) -> None:
        self.src, self.info, self._out, self._vs, self._warn = Path(src), info, out, video, warn
        self._start, self._t0, self._t1 = start, start or Fraction(0), end
        self._tracks_only = tracks_only  # an added sound or subtitle file: its streams, not its labels
        self._in = None
        self._covers: list[tuple[object, bytes]] = []
        self._last_dts: dict[int, int] = {}  # per source stream: the last dts muxed
        self._overlaps: dict[int, int] = {}  # per source stream: packets left out as going back in time
        self._setup()

    def _setup(self) -> None:
        self._map: dict[int, tuple[str, object]] = {}
        self._pending = self._side_iter = None
        self._mov_text_gaps: set[int] = set()
        if self.src.is_dir():  # an image sequence: pictures only; a timecode from its DPX header
            self._carry_timecode()
            return
        self._in = av.open(str(self.src), "r", metadata_errors="ignore")
        if not self._tracks_only:
            self._carry_labels()
        else:
            self._align_to_timecode()
        pics = [] if self._tracks_only else \
            [s for s in self._in.streams.video if s.disposition & av.stream.Disposition.attached_pic]
        samples = _first_packets(self.src, [s for s in self._in.streams if s.type in ("audio", "subtitle")] + pics)
        for s in self._in.streams:
            if s.type == "video" and s.index != self.info.stream_index and not self._tracks_only \
                    and not s.disposition & av.stream.Disposition.attached_pic:
                self._warn(f"{self.src}: video stream {s.index} ({s.codec_context.name}, {s.codec_context.width}x"
                           f"{s.codec_context.height}) is a second picture; only stream {self.info.stream_index} "
                           "is coloured, the other is left out")
            elif s.type in ("audio", "subtitle"):
                self._carry_stream(s, samples.get(s.index))
        self._covers = self._cover_art(pics, samples)
        language = tags.language_in_name(self.src) if self._tracks_only else None
        if language:  # reel.fr.srt: French, as players read a sidecar's name
            for kind, target in self._map.values():
                stream = target if kind == "copy" else target.stream if kind == "aac" else target[0]
                stream.metadata.setdefault("language", language)
        self._mov_text_gaps = {
            i for i, (kind, _) in self._map.items()
            if kind == "copy" and self._in.streams[i].codec_context is not None
            and self._in.streams[i].codec_context.name == "mov_text"
            and self._out.format.name in ("mp4", "mov", "ipod", "3gp")
        }
        if self._map:
            if self._t0 > 0:  # (an FLV without an index cannot seek: read from the start, t0 on kept)
                from .media import seek_or_rewind

                seek_or_rewind(self._in, max(0, int((self._t0 - 1) * 1_000_000)), backward=True, any_frame=True)
            self._side_iter = self._side_packets([self._in.streams[i] for i in self._map])

    def _align_to_timecode(self) -> None:
        """An added Broadcast WAV whose time reference and the film's timecode say where the sound
        starts against the picture (a scanner's pre-roll, say) is laid there, not at frame one."""
        audio = self._in.streams.audio
        lead = tags.sound_lead(self._in.metadata.get("time_reference"),
                               audio[0].codec_context.sample_rate if audio else None, self.info.timecode, self.info.fps)
        if lead is None or lead == 0:
            return
        if abs(lead) > MAX_SOUND_LEAD:
            self._warn(f"{self.src}: its time reference puts the sound {float(lead):+.2f} s from the picture's "
                       f"timecode {self.info.timecode}; not believed: laid from the first frame")
            return
        self._start = self._t0 = self._t0 + lead
        if self._t1 is not None:
            self._t1 += lead

    def _carry_stream(self, s, sample) -> None:
        """One audio or subtitle stream: a packet copy where the output takes it, else AAC (audio),
        another text form (subtitles) or nothing, with a ``warn``."""
        fmt = self._out.format.name
        name = s.codec_context.name if s.codec_context is not None else (s.name or "unknown codec")
        if _muxer_accepts(fmt, s, sample):
            copy = _copy_stream(self._out, s)
            copy.time_base = s.time_base  # a hint; muxers with a fixed clock (Matroska: 1 ms) override it
            self._map[s.index] = ("copy", copy)
            _label(copy, s, reencoded=False)
        # (MPEG-TS answers no to every codec query, AAC included)
        elif s.type == "audio" and (pcm := _exact_pcm(fmt, s)) is not None:
            transcoder = _Transcoder(s, self._out, pcm)
            self._map[s.index] = ("aac", transcoder)
            _label(transcoder.stream, s, reencoded=True)
            self._warn(f"{self.src}: audio stream {s.index} ({name}) cannot go into {fmt}; decoded to PCM "
                       f"({pcm}: the same sound, nothing lost)")
        elif s.type == "audio" and (fmt == "mpegts" or "aac" in self._out.supported_codecs):
            transcoder = _Transcoder(s, self._out)
            self._map[s.index] = ("aac", transcoder)
            _label(transcoder.stream, s, reencoded=True)
            said = "cannot be copied into" if name == "aac" else "cannot go into"
            self._warn(f"{self.src}: audio stream {s.index} ({name}) {said} {fmt}; transcoded to AAC")
        elif s.type == "subtitle" and name in subtitles.TEXT_CODECS and subtitles.TARGETS.get(fmt):
            target = subtitles.TARGETS[fmt]
            stream = self._out.add_mux_stream(target, time_base=s.time_base)
            _label(stream, s, reencoded=True)
            self._map[s.index] = ("text", (stream, name, target))
            self._warn(f"{self.src}: subtitle stream {s.index} ({name}) cannot go into {fmt}; "
                       f"converted to {target} (the text and timing; not the styling)")
        else:
            self._warn(f"{self.src}: {s.type} stream {s.index} ({name}) cannot go into {fmt}; dropped")

    def _carry_labels(self) -> None:
        """The film's own labels onto the output: its tags (title, date, comment...), the picture
        stream's tags (language, title, timecode) and flags, its chapters and its attachments (the
        fonts of styled subtitles), each cut to the written stretch (see ``tags``)."""
        src, out, info = self._in, self._out, self.info
        fmt = out.format.name
        video_in = next((s for s in src.streams.video if s.index == info.stream_index), None)
        out.metadata.update(tags.carried_tags(src.metadata))
        if video_in is not None and self._vs is not None:
            _label(self._vs, video_in, reencoded=True)
        self._carry_timecode()
        chapters = tags.carried_chapters(src.chapters(), self._start, self._t1)
        if chapters:
            out.set_chapters(chapters)
        attachments = list(src.streams.attachments)
        if attachments and fmt == "matroska":
            for a in attachments:
                out.add_attachment(a.name or f"attachment{a.index}", a.mimetype or "application/octet-stream",
                                   bytes(a.data))
        elif attachments:
            self._warn(f"{self.src}: {len(attachments)} attachment(s) ("
                       f"{', '.join(a.name or '?' for a in attachments[:3])}) cannot go into {fmt}; "
                       "left out (.mkv keeps them)")

    def _carry_timecode(self) -> None:
        """The film's timecode (a label of the container or picture stream, or ``info.timecode``: a
        scan's DPX header) onto the output, as that of the first frame written."""
        out, info = self._out, self.info
        fmt = out.format.name
        skipped = tags.frames_before(self._t0, info.start_time, info.fps) if self._start and info.fps else 0
        places = [out.metadata] + ([self._vs.metadata] if self._vs is not None else [])
        if info.timecode and not any(tags.timecode_key(labels) for labels in places):
            places[-1]["timecode"] = info.timecode
        for labels in places:
            key = tags.timecode_key(labels)
            if key is None:
                continue
            if fmt in ("mp4", "mov", "ipod") and tags.nominal_rate(info.fps or 25) > tags.MOV_TIMECODE_MAX_FPS:
                self._warn(f"{self.src}: timecode {labels.pop(key)} left out: a {fmt} timecode track counts at most "
                           f"{tags.MOV_TIMECODE_MAX_FPS} frames a second (.mkv keeps it as a tag)")
            elif skipped:  # an excerpt's timecode is that of its own first frame
                labels[key] = tags.shift_timecode(labels[key], skipped, info.fps)

    def _cover_art(self, pics, samples: dict) -> list[tuple[object, bytes]]:
        """Carry the film's cover pictures (``pics``, streams flagged attached_pic, whose picture is
        their one packet in ``samples``): into Matroska as attachments, into MP4 as cover streams
        (returned with their picture, to be muxed once all streams exist); other containers cannot
        hold one, which ``warn`` says."""
        fmt, out = self._out.format.name, []
        for s in pics:
            if s.index not in samples:
                continue
            data = bytes(samples[s.index])
            codec = s.codec_context.name if s.codec_context is not None else ""
            if fmt == "matroska":
                ext, mime = _PICTURE_TYPES.get(codec, ("", "application/octet-stream"))
                self._out.add_attachment(s.metadata.get("filename") or f"cover{ext}",
                                         s.metadata.get("mimetype") or mime, data)
            elif fmt in ("mp4", "ipod") and codec in _PICTURE_TYPES:  # MOV has no cover box
                copy = self._out.add_stream_from_template(s)
                _label(copy, s, reencoded=False)
                copy.disposition = av.stream.Disposition.attached_pic
                out.append((copy, data))
            else:
                self._warn(f"{self.src}: its cover picture (stream {s.index}, {codec}) cannot go into {fmt}; "
                           "left out (.mkv and .mp4 keep it)")
        return out

    def _side_packets(self, streams):
        """In-range packets of the copied streams, in file order, as (packet, time in seconds). A PCM
        packet across an edge of the stretch is cut at the sample (``_pcm_cut``), so an excerpt's
        sound starts and ends with its picture; other codecs go packet by packet."""
        done: set[int] = set()
        pcm = {s.index: _pcm_frame_bytes(s) for s in streams}  # copied, or decoded for AAC: cut the same
        try:
            for packet in self._in.demux(streams):
                ts = packet.pts if packet.pts is not None else packet.dts
                if ts is None:
                    continue
                tb = packet.time_base
                t = ts * tb
                step = pcm.get(packet.stream.index)
                if self._start is not None and t < self._t0 - tb / 2:
                    if not step or not packet.duration or (ts + packet.duration) * tb <= self._t0:
                        continue
                    packet, t = _pcm_cut(packet, step, skip=self._t0 - t), self._t0
                if self._t1 is not None and t >= self._t1 - tb / 2:
                    done.add(packet.stream.index)
                    if len(done) == len(streams):
                        return
                    continue
                if step and self._t1 is not None and packet.duration and t + packet.duration * tb > self._t1:
                    packet = _pcm_cut(packet, step, keep=self._t1 - t)
                yield packet, t - self._t0
        except av.error.FFmpegError as e:
            self._warn(f"{self.src}: audio/subtitle data unreadable after this point ({e}); stopped copying")

    def _mux_side(self, packet) -> None:
        source = packet.stream
        kind, target = self._map[source.index]
        if kind == "copy" and self._mov_text_gaps and packet.stream.index in self._mov_text_gaps \
                and packet.size == 2 and bytes(packet) == b"\x00\x00":
            return  # an empty mov_text "end of cue" sample: the MP4 muxer writes its own
        if kind == "text":  # a cue turned into the form this container holds
            stream, src_codec, dst_codec = target
            data = subtitles.convert(src_codec, dst_codec, bytes(packet))
            if not subtitles.cue_text(dst_codec, data):
                return  # an empty "end of cue" sample: the target's muxer marks cue ends itself
            cue = av.Packet(data)
            cue.time_base, cue.pts, cue.dts, cue.duration = packet.time_base, packet.pts, packet.dts, packet.duration
            packet, target = cue, stream
        if kind in ("copy", "text") and self._goes_back(source, packet.dts):
            return
        if kind in ("copy", "text"):
            shift = round(self._t0 / packet.time_base)
            if packet.pts is not None:
                packet.pts -= shift
            if packet.dts is not None:
                packet.dts -= shift
            packet.stream = target
            self._out.mux(packet)
        else:
            self._out.mux(target.packets(packet, self._t0))

    def _goes_back(self, stream, dts: int | None) -> bool:
        """Whether a packet at ``dts`` goes back in time on ``stream`` (sound: or stays put), as
        where a recording was spliced (a broadcast capture, two takes joined) and its pieces'
        sound overlaps: no muxer takes it, and the whole film was lost to it. It is left out (the
        sound it repeats was copied already) and counted for a warning at the end."""
        index = stream.index
        if dts is None:
            return False
        last = self._last_dts.get(index)
        if last is not None and (dts < last or dts == last and stream.type == "audio"):
            self._overlaps[index] = self._overlaps.get(index, 0) + 1
            return True
        self._last_dts[index] = dts
        return False

    def write_covers(self) -> None:
        """Mux the cover pictures: once every stream of the output is added, since it writes the header."""
        for stream, data in self._covers:
            packet = av.Packet(data)
            packet.stream, packet.time_base, packet.pts, packet.dts = stream, stream.time_base, 0, 0
            self._out.mux(packet)
        self._covers = []

    @property
    def streams(self) -> int:
        """How many audio and subtitle streams go into the output (copied or converted)."""
        return len(self._map)

    def pump(self, until: Fraction | None) -> None:
        """Mux side-stream packets up to ``until`` seconds (all when None)."""
        if self._side_iter is None:
            return
        while True:
            if self._pending is None:
                self._pending = next(self._side_iter, None)
                if self._pending is None:
                    self._side_iter = None
                    return
            packet, t = self._pending
            if until is not None and t > until:
                return
            self._pending = None
            self._mux_side(packet)

    def finish(self) -> None:
        """Mux every remaining packet and flush the AAC transcoders (before the output is closed)."""
        self.pump(None)
        for kind, target in self._map.values():
            if kind == "aac":
                self._out.mux(target.packets(None, self._t0))
        for index, n in self._overlaps.items():
            kind = self._in.streams[index].type if self._in is not None else "side"
            self._warn(f"{self.src}: {kind} stream {index}: {n} packet(s) going back in time (a splice in the "
                       "recording, its pieces overlapping) left out")

    def close(self) -> None:
        if self._in is not None:
            self._in.close()
            self._in = None
