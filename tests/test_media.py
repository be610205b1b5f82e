"""media.py: probe errors, decode selection, planes, and decode -> planes -> encode round trips.

Round trips use an identity transform and check what the product promises: same frame count and
per-frame timestamps, audio/subtitle packets copied byte for byte with their timestamps, luminance
PSNR >= 40 dB, colour tags / SAR / rotation carried.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio

from filmcolor import media, synth
from filmcolor.errors import InputError
from filmcolor.synth import _tone
from helpers import COVER, FONT, D, labelled_film, read_labels


# --- helpers -------------------------------------------------------------------------------------
def video_times(path: Path) -> list[Fraction]:
    with av.open(str(path)) as c:
        return [f.pts * f.time_base for f in c.decode(video=0)]


def y_planes(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        out = []
        for f in c.decode(video=0):
            p = media.frame_to_planes(f, media._pix_fmt_name("444", 8 if f.format.name.endswith("p") else 10))
            out.append(p.y)
        return out


def side_packets(path: Path) -> list[list[tuple[Fraction | None, bytes]]]:
    """Per non-video stream (in stream order): [(pts in seconds, payload)] of every packet."""
    with av.open(str(path)) as c:
        streams = [s for s in c.streams if s.type in ("audio", "subtitle")]
        if not streams:
            return []
        out = {s.index: [] for s in streams}
        for p in c.demux(streams):
            if p.dts is None and p.pts is None:
                continue
            out[p.stream.index].append((None if p.pts is None else p.pts * p.time_base, bytes(p)))
        return [out[s.index] for s in streams]


def roundtrip(src: Path, dst: Path, **kw) -> tuple[media.VideoInfo, list[str]]:
    """decode -> planes -> planes_to_frame -> VideoWriter, identity transform."""
    info = media.probe(src)
    warnings: list[str] = []
    start, duration = kw.get("start"), kw.get("duration")
    with media.VideoWriter(src, dst, info, warn=warnings.append, **kw) as w:
        for frame in media.decode(src, start, duration):
            planes = media.frame_to_planes(frame, w.pix_fmt)
            w.write(media.planes_to_frame(planes, w.pix_fmt, frame))
    return info, warnings


def assert_luma_close(src: Path, dst: Path, bit_depth: int = 8, min_db: float = 40.0) -> None:
    a, b = y_planes(src), y_planes(dst)
    assert len(a) == len(b)
    for ya, yb in zip(a, b):
        assert ya.shape == yb.shape
        if np.array_equal(ya, yb):
            continue
        assert peak_signal_noise_ratio(ya, yb, data_range=(1 << bit_depth) - 1) >= min_db


# --- round trips ---------------------------------------------------------------------------------
CASES = {
    "mp4-25-aac": ("a.mp4", dict(audio=("aac",))),
    "mkv-23.976-opus+mp3": ("b.mkv", dict(fps="24000/1001", audio=("libopus", "mp3"))),
    "mov-29.97-pcm": ("c.mov", dict(fps="30000/1001", audio=("pcm_s16le",))),
    "mp4-vfr-aac": ("d.mp4", dict(vfr=True, audio=("aac",))),
    "mkv-vfr-29.97-aac+pcm": ("e.mkv", dict(vfr=True, fps="30000/1001", audio=("aac", "pcm_s16le"))),
    "mkv-odd-444-silent": ("f.mkv", dict(width=65, height=49, pix_fmt="yuv444p", audio=())),
    "mkv-odd-ffv1-420": ("g.mkv", dict(width=65, height=49, codec="ffv1", fps="24000/1001")),
    "mp4-opus": ("h.mp4", dict(audio=("libopus",))),
    "mp4-pcm+mp3-29.97": ("i.mp4", dict(fps="30000/1001", audio=("pcm_s16le", "mp3"))),
    "mp4-subtitles": ("j.mp4", dict(subtitles=True, frames=30)),
    "mkv-subtitles": ("k.mkv", dict(subtitles=True, frames=30)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_roundtrip_keeps_frames_timestamps_and_streams(clip, tmp_path, case):
    name, kw = CASES[case]
    src = clip(name, **kw)
    dst = tmp_path / ("out" + Path(name).suffix)
    info, warnings = roundtrip(src, dst)
    assert warnings == []
    src_t, dst_t = video_times(src), video_times(dst)
    assert len(src_t) == len(dst_t) == 12 if "frames" not in kw else kw["frames"]
    assert dst_t == src_t  # exact, as fractions of a second
    src_side, dst_side = side_packets(src), side_packets(dst)
    assert len(src_side) == len(kw.get("audio", ("aac",))) + bool(kw.get("subtitles"))
    assert dst_side == src_side  # same payload bytes and timestamps, packet for packet
    out = media.probe(dst)
    assert (out.width, out.height) == (info.width, info.height)
    assert out.fps == info.fps or kw.get("vfr")
    assert_luma_close(src, dst)


def test_avi_keeps_frames_spacing_and_audio(clip, tmp_path):
    # AVI stores no timestamps (frame indices only; FFmpeg guesses pts on reading), so only the
    # spacing is exact there; audio packets are copied as they are.
    src = clip("a.avi", audio=("mp3",))
    dst = tmp_path / "out.avi"
    roundtrip(src, dst)
    a, b = video_times(src), video_times(dst)
    assert len(a) == len(b) == 12
    assert np.diff(a).tolist() == np.diff(b).tolist()
    assert abs(a[0] - b[0]) <= Fraction(2, 25)
    assert side_packets(dst) == side_packets(src)
    assert_luma_close(src, dst)


@pytest.mark.parametrize("dst_name", ["out.mkv", "out.mp4"])
def test_avi_with_b_frames_is_written_in_presentation_order(tmp_path, dst_name):
    # H.264 with B-frames in AVI (how opencv's vtest clip in the shared data is stored): FFmpeg
    # numbers the packets in decode order and the decoder hands the frames out in presentation
    # order still carrying those numbers (1, 4, 3, 5, 2, ...). Every muxer refused them, so the
    # whole film failed ("Invalid argument") after it had been coloured.
    src = tmp_path / "b.avi"
    with av.open(str(src), "w") as out:
        vs = out.add_stream("libx264", rate=10)
        vs.width, vs.height, vs.pix_fmt = 64, 48, "yuv420p"
        vs.options = {"crf": "16", "preset": "medium", "x264-params": "bframes=3:b-pyramid=normal:keyint=30"}
        for i in range(40):
            frame = av.VideoFrame.from_ndarray(synth.synthetic_frame(i, 64, 48), format="rgb24")
            frame = frame.reformat(format="yuv420p")
            frame.pts = i
            out.mux(vs.encode(frame))
        out.mux(vs.encode())
    with av.open(str(src)) as c:
        raw = [f.pts for f in c.decode(video=0)]
    assert raw != sorted(raw)  # the case: decode-order numbers on presentation-order frames
    assert media._stamped_in_decode_order(src, 0, None)
    # the same B-frames in MP4 carry real timestamps: no frames are held back for them
    mp4 = tmp_path / "b.mp4"
    roundtrip(src, mp4)
    assert not media._stamped_in_decode_order(mp4, 0, None)
    dst = tmp_path / dst_name
    roundtrip(src, dst)
    times = video_times(dst)
    assert len(times) == 40 and times == sorted(times) and len(set(times)) == 40
    assert times == [Fraction(t, 10) for t in sorted(raw)]  # the same timestamps, in order
    for k, (a, b) in enumerate(zip(y_planes(src), y_planes(dst))):  # and the pictures in order
        assert peak_signal_noise_ratio(a, b, data_range=255) >= 40, k


def test_a_picture_that_changes_size_mid_film_is_scaled_with_a_warning(tmp_path):
    # broadcast captures switch resolution in-band (a new MPEG-2 sequence header in the same stream)
    src = tmp_path / "sizes.ts"
    with av.open(str(src), "w") as out:
        vs = out.add_stream("mpeg2video", rate=25)
        vs.width, vs.height, vs.pix_fmt = 128, 96, "yuv420p"
        big = av.CodecContext.create("mpeg2video", "w")
        big.width, big.height, big.pix_fmt, big.time_base, big.framerate = 192, 144, "yuv420p", Fraction(1, 25), 25
        for i in range(40):
            w, h, enc = (128, 96, vs) if i < 20 else (192, 144, big)
            frame = av.VideoFrame.from_ndarray(synth.synthetic_frame(i, w, h), format="rgb24")
            frame = frame.reformat(format="yuv420p")
            frame.pts, frame.time_base = i, Fraction(1, 25)
            if i == 20:
                out.mux(vs.encode())
            for packet in enc.encode(frame):
                packet.stream, packet.time_base = vs, Fraction(1, 25)
                out.mux(packet)
        for packet in big.encode(None):
            packet.stream, packet.time_base = vs, Fraction(1, 25)
            out.mux(packet)
    with av.open(str(src)) as c:
        sizes = [(f.width, f.height) for f in c.decode(video=0)]
    assert sizes[0] == (128, 96) and sizes[-1] == (192, 144)
    dst = tmp_path / "out.mkv"
    _, warnings = roundtrip(src, dst)
    (warning,) = warnings
    assert "192x144 from 0.8" in warning and "scaled to 128x96" in warning
    with av.open(str(dst)) as c:
        assert [(f.width, f.height) for f in c.decode(video=0)] == [(128, 96)] * len(sizes)


def test_ten_bit_source_stays_ten_bit(clip, tmp_path):
    src = clip("ten.mp4", pix_fmt="yuv420p10le")
    info = media.probe(src)
    assert (info.pix_fmt, info.bit_depth) == ("yuv420p10le", 10)
    dst = tmp_path / "out.mp4"
    roundtrip(src, dst)
    out = media.probe(dst)
    assert (out.pix_fmt, out.bit_depth) == ("yuv420p10le", 10)
    assert video_times(dst) == video_times(src)
    assert_luma_close(src, dst, bit_depth=10)
    y = y_planes(dst)[0]
    assert y.dtype == np.uint16 and y.max() > 255  # real 10-bit code values, not 8-bit in 16


@pytest.mark.parametrize("pix_fmt", ["yuvj420p", "yuv420p"])
def test_full_range_source_stays_full_range(clip, tmp_path, pix_fmt):
    src = clip("full.mp4", pix_fmt=pix_fmt, full_range=True)
    info = media.probe(src)
    assert info.full_range
    dst = tmp_path / "out.mp4"
    roundtrip(src, dst)
    assert media.probe(dst).full_range
    assert_luma_close(src, dst)


@pytest.mark.parametrize("dst_name", ["out.mp4", "out.mkv", "out.mov"])
def test_tags_sar_rotation_carried(clip, tmp_path, dst_name):
    src = clip("tags.mp4", sar=Fraction(4, 3), rotation=90, color_tags=(1, 1, 1))
    info = media.probe(src)
    assert (info.rotation, info.sample_aspect_ratio) == (90, Fraction(4, 3))
    assert (info.color_primaries, info.color_trc, info.colorspace) == (1, 1, 1)
    dst = tmp_path / dst_name
    roundtrip(src, dst)
    out = media.probe(dst)
    assert (out.rotation, out.sample_aspect_ratio) == (90, Fraction(4, 3))
    assert (out.color_primaries, out.color_trc, out.colorspace) == (1, 1, 1)
    assert (out.width, out.height) == (64, 48)  # coded size, rotation is metadata


def test_mkv_to_mp4_and_back_keeps_timestamps(clip, tmp_path):
    src = clip("x.mkv", audio=("aac", "libopus"), fps=25)
    mp4 = tmp_path / "out.mp4"
    roundtrip(src, mp4)
    assert video_times(mp4) == video_times(src)
    assert side_packets(mp4) == side_packets(src)
    back = tmp_path / "back.mkv"
    roundtrip(mp4, back)
    assert video_times(back) == video_times(src)
    assert side_packets(back) == side_packets(src)


# --- an archive film's labels: tags, languages, flags, timecode, chapters, attachments, cover -------
def test_matroska_keeps_every_label(clip, tmp_path):
    src = labelled_film(tmp_path / "labelled.mkv")
    before = read_labels(src)
    assert before["cover"] == [COVER] and before["attachments"] == [("Caslon.ttf", FONT)]  # the source is right
    dst = tmp_path / "out.mkv"
    _, warnings = roundtrip(src, dst)
    assert warnings == []
    after = read_labels(dst)
    assert after == before
    assert after["streams"][1] == ("audio", "fra", "French dub", int(D.default))
    assert after["chapters"] == [(0.0, 1.0, "Opening"), (1.0, 2.0, "Harbour")]
    assert after["timecode"] == "01:00:00:00"


def test_mp4_keeps_labels_it_can_hold_and_says_what_it_cannot(clip, tmp_path):
    src = labelled_film(tmp_path / "labelled.mkv")
    dst = tmp_path / "out.mp4"
    _, warnings = roundtrip(src, dst)
    after, before = read_labels(dst), read_labels(src)
    for key in ("title", "comment", "chapters", "timecode", "cover"):
        assert after[key] == before[key], key
    assert after["streams"][:3] == before["streams"][:3]
    # SubRip cannot go into MP4: it becomes mov_text, still English, still forced (MP4 adds "default")
    assert after["streams"][3][:3] == before["streams"][3][:3] and after["streams"][3][3] & int(D.forced)
    assert [w for w in warnings if "converted to mov_text" in w]
    (attach,) = [w for w in warnings if "attachment" in w]
    assert "Caslon.ttf" in attach and ".mkv keeps them" in attach
    with av.open(str(dst)) as c:  # MP4 keeps a timecode as a tmcd track
        assert [s.metadata.get("timecode") for s in c.streams.data if s.metadata.get("timecode")] == ["01:00:00:00"]


def test_excerpt_carries_its_own_timecode_and_chapters(clip, tmp_path):
    src = labelled_film(tmp_path / "labelled.mkv")
    dst = tmp_path / "excerpt.mov"
    _, warnings = roundtrip(src, dst, start=1.0, duration=0.6)
    after = read_labels(dst)
    assert after["timecode"] == "01:00:01:00"  # 25 frames later
    assert after["chapters"] == [(0.0, 0.6, "Harbour")]
    assert after["title"] == "Reel 3: The Harbour"
    # Opus went in as AAC and SubRip as mov_text, labels and all (MOV has no flag for a commentary track)
    assert [s[:3] for s in after["streams"]] == [s[:3] for s in read_labels(src)["streams"]]
    assert any("cover picture" in w and "mov" in w for w in warnings)  # MOV has no cover box


def test_high_speed_film_keeps_its_picture_when_mp4_cannot_hold_its_timecode(clip, tmp_path):
    # 300 fps: MP4's timecode track cannot count that fast and FFmpeg failed the file at its end
    src = clip("fast.mkv", fps=300, frames=30, audio=())
    tagged = tmp_path / "fast-tc.mkv"
    with av.open(str(src)) as inp, av.open(str(tagged), "w") as out:
        v = out.add_stream_from_template(inp.streams.video[0])
        v.metadata["timecode"] = "10:00:00:00"
        for packet in inp.demux():
            if packet.dts is not None:
                packet.stream = v
                out.mux(packet)
    _, warnings = roundtrip(tagged, tmp_path / "out.mp4")
    assert [w for w in warnings if "timecode 10:00:00:00 left out" in w]
    assert len(video_times(tmp_path / "out.mp4")) == 30
    _, warnings = roundtrip(tagged, tmp_path / "out.mkv")
    assert warnings == [] and read_labels(tmp_path / "out.mkv")["timecode"] == "10:00:00:00"


def test_dv_frame_rate_is_the_tapes_not_its_time_base(tmp_path):
    src = tmp_path / "tape.dv"
    with av.open(str(src), "w") as c:
        s = c.add_stream("dvvideo", rate=25)
        s.width, s.height, s.pix_fmt = 720, 576, "yuv420p"
        for i in range(3):
            c.mux(s.encode(av.VideoFrame(720, 576, "yuv420p")))
        c.mux(s.encode())
    with av.open(str(src)) as c:
        assert c.streams.video[0].average_rate == 60000  # what the raw DV demuxer reports
    assert media.probe(src).fps == 25


def test_a_second_picture_stream_is_named_when_it_is_left_out(clip, tmp_path):
    film, other = clip("v1.mkv"), clip("v2.mkv", width=32, height=24, audio=())
    src = tmp_path / "two.mkv"
    with av.open(str(film)) as a, av.open(str(other)) as b, av.open(str(src), "w") as out:
        copies = {(0, s.index): out.add_stream_from_template(s) for s in a.streams}
        copies[(1, 0)] = out.add_stream_from_template(b.streams.video[0])
        for k, inp in enumerate((a, b)):
            for packet in inp.demux():
                if packet.dts is not None:
                    packet.stream = copies[(k, packet.stream.index)]
                    out.mux(packet)
    _, warnings = roundtrip(src, tmp_path / "out.mkv")
    assert warnings == [f"{src}: video stream 2 (h264, 32x24) is a second picture; only stream 0 is coloured, "
                        "the other is left out"]
    with av.open(str(tmp_path / "out.mkv")) as c:
        assert [s.type for s in c.streams] == ["video", "audio"]


def _film_with_audio(clip, tmp_path: Path, codec: str, sample_fmt: str) -> Path:
    """A 1 s Matroska film whose one audio track is ``codec`` (silence; Matroska leaves the
    channel order of PCM unsaid: "2 channels", not "stereo")."""
    silent = clip("silent.mkv", frames=25, audio=())
    dst = tmp_path / f"{codec}.mkv"
    with av.open(str(silent)) as inp, av.open(str(dst), "w") as out:
        v = out.add_stream_from_template(inp.streams.video[0])
        a = out.add_stream(codec, rate=48000)
        a.layout, a.format = "stereo", sample_fmt
        for packet in inp.demux():
            if packet.dts is not None:
                packet.stream = v
                out.mux(packet)
        size = a.codec_context.frame_size or 1024
        for start in range(0, 48000, size):
            frame = av.AudioFrame(format=sample_fmt, layout="stereo", samples=size)
            for plane in frame.planes:
                plane.update(bytes(plane.buffer_size))
            frame.sample_rate, frame.pts, frame.time_base = 48000, start, Fraction(1, 48000)
            out.mux(a.encode(frame))
        out.mux(a.encode())
    return dst


def _audio(path: Path) -> list[tuple[str, str, float]]:
    with av.open(str(path)) as c:
        streams = [(s.codec_context.name, s.codec_context.layout.name, s.codec_context.sample_rate)
                   for s in c.streams.audio]
        seconds = sum(f.samples for f in c.decode(audio=0)) / streams[0][2] if streams else 0.0
    return [(name, layout, round(seconds, 1)) for name, layout, _ in streams]


@pytest.mark.parametrize("codec,sample_fmt,dst_name,expect,transcoded", [
    # MP4's PCM writer refused the unordered layout when finishing the file: the film was lost
    ("pcm_s24le", "s32", "out.mp4", ("pcm_s24le", "stereo"), False),
    # MPEG-TS took FLAC as a private data stream: the output had no playable sound track
    ("flac", "s16", "out.ts", ("aac", "stereo"), True),
    # the AAC encoder refused the unordered layout: the film was lost; then it went to AAC, a lossy
    # generation for sound that AVI holds exactly as PCM
    ("pcm_s16be", "s16", "out.avi", ("pcm_s16le", "2 channels"), False),  # (AVI states no channel order)
])
def test_sound_tracks_other_muxers_refuse_late_or_lose_quietly(clip, tmp_path, codec, sample_fmt, dst_name,
                                                               expect, transcoded):
    src = _film_with_audio(clip, tmp_path, codec, sample_fmt)
    ((name, layout, seconds),) = _audio(src)
    assert name == codec and (layout == "2 channels" or codec == "flac")  # FLAC stores its channel mask
    _, warnings = roundtrip(src, tmp_path / dst_name)
    assert bool([w for w in warnings if "transcoded to AAC" in w]) == transcoded
    ((name, layout, out_seconds),) = _audio(tmp_path / dst_name)
    assert (name, layout) == expect and abs(out_seconds - seconds) < 0.1


def _avi_with_adts_sound(clip, tmp_path: Path) -> Path:
    """An AVI whose AAC sound is in ADTS frames without a decoder config, as AVIs in the wild hold it."""
    from filmcolor.carry import ADTS_AVI_TAG

    adts = tmp_path / "sound.aac"
    with av.open(str(clip("a.mp4", frames=25))) as c, av.open(str(adts), "w", format="adts") as o:
        s = o.add_stream_from_template(c.streams.audio[0])
        for packet in c.demux(c.streams.audio[0]):
            if packet.dts is not None:
                packet.stream = s
                o.mux(packet)
    picture = clip("v.avi", frames=25, audio=())
    dst = tmp_path / "adts.avi"
    with av.open(str(picture)) as v, av.open(str(adts)) as a, av.open(str(dst), "w") as o:
        assert not a.streams.audio[0].codec_context.extradata  # ADTS: the config is in each frame
        vs, as_ = o.add_stream_from_template(v.streams.video[0]), o.add_stream_from_template(a.streams.audio[0])
        as_.codec_context.codec_tag = ADTS_AVI_TAG
        for src, out in ((v, vs), (a, as_)):
            for packet in src.demux(src.streams[0]):
                if packet.dts is not None:
                    packet.stream = out
                    o.mux(packet)
    return dst


@pytest.mark.parametrize("dst_name", ["out.avi", "out.mkv"])
def test_adts_sound_of_an_avi_is_copied_not_transcoded(clip, tmp_path, dst_name):
    # AVI's muxer took ADTS AAC only under its own format tag: the sound was re-encoded (a generation
    # lost) with the warning "audio stream 1 (aac) cannot go into avi; transcoded to AAC"
    src = _avi_with_adts_sound(clip, tmp_path)
    _, warnings = roundtrip(src, tmp_path / dst_name)
    assert not [w for w in warnings if "transcoded" in w], warnings
    with av.open(str(src)) as a, av.open(str(tmp_path / dst_name)) as b:
        sent = [bytes(p) for p in a.demux(audio=0) if p.size]
        kept = [bytes(p) for p in b.demux(audio=0) if p.size]
    if dst_name == "out.avi":
        assert kept == sent  # packet for packet
    assert len(kept) == len(sent) and _audio(tmp_path / dst_name)[0][2] == _audio(src)[0][2]


@pytest.mark.parametrize("codec,sample_fmt,rate", [("pcm_alaw", "s16", 8000), ("adpcm_ima_wav", "s16p", 22050),
                                                 ("pcm_u8", "u8", 11025)])
def test_old_pcm_and_adpcm_sound_matroska_cannot_hold_is_decoded_to_pcm_sample_for_sample(tmp_path, codec,
                                                                                          sample_fmt, rate):
    # an old AVI digitisation's A-law or ADPCM sound went to AAC in the .mkv a coloured AVI becomes: a lossy
    # generation, where PCM holds the decoded sound exactly (Matroska does hold unsigned 8 bit: copied)
    src = tmp_path / "old.avi"
    with av.open(str(src), "w") as c:
        v = c.add_stream("mjpeg", rate=25)
        v.width, v.height, v.pix_fmt = 64, 48, "yuvj420p"
        a = c.add_stream(codec, rate=rate)
        a.layout = "mono"
        for i in range(25):
            picture = av.VideoFrame.from_ndarray(synth.synthetic_frame(i, 64, 48, color=False), format="rgb24")
            for p in v.encode(picture.reformat(format="yuvj420p")):
                c.mux(p)
        size = a.codec_context.frame_size or 1024
        for k in range(rate // size):
            tone = np.sin(np.arange(k * size, (k + 1) * size) / 5.0) * 0.3
            samples = ((tone + 1) * 127).astype(np.uint8) if sample_fmt == "u8" else (tone * 20000).astype(np.int16)
            sound = av.AudioFrame.from_ndarray(samples[None], format=sample_fmt, layout="mono")
            sound.sample_rate, sound.pts = rate, k * size
            for p in a.encode(sound):
                c.mux(p)
        for stream in (v, a):
            for p in stream.encode():
                c.mux(p)
    _, warnings = roundtrip(src, tmp_path / "out.mkv")
    assert not [w for w in warnings if "AAC" in w], warnings
    with av.open(str(src)) as c:
        sent = np.concatenate([f.to_ndarray().ravel() for f in c.decode(audio=0)])
    with av.open(str(tmp_path / "out.mkv")) as c:
        name = c.streams.audio[0].codec_context.name
        kept = np.concatenate([f.to_ndarray().ravel() for f in c.decode(audio=0)])
    assert name == ("pcm_u8" if codec == "pcm_u8" else "pcm_s16le") and np.array_equal(kept, sent)


def test_a_codec_the_muxer_refuses_only_at_its_header_is_transcoded(clip, tmp_path):
    # MOV lists Opus among its codecs but its muxer refuses it when writing the header: before the
    # check, the copy failed the whole film ("Invalid argument") with the picture already coloured
    src = clip("o.mkv", audio=("libopus",), frames=25)
    _, warnings = roundtrip(src, tmp_path / "out.mov")
    assert [w for w in warnings if "opus" in w and "transcoded to AAC" in w]
    with av.open(str(tmp_path / "out.mov")) as c:
        assert [s.codec_context.name for s in c.streams.audio] == ["aac"]
        seconds = sum(f.samples for f in c.decode(audio=0)) / c.streams.audio[0].sample_rate
    assert abs(seconds - 1.0) < 0.1


def test_unsupported_streams_are_transcoded_or_dropped_with_warning(clip, tmp_path):
    src = clip("s.mkv", audio=("libopus",), subtitles=True, frames=25)
    dst = tmp_path / "out.avi"  # AVI holds neither Opus nor SubRip
    _, warnings = roundtrip(src, dst)
    assert any("transcoded to AAC" in w for w in warnings)
    assert any("subtitle" in w and "dropped" in w for w in warnings)
    with av.open(str(dst)) as c:
        assert [s.codec_context.name for s in c.streams.audio] == ["aac"]
        assert not c.streams.subtitles
        audio = [f for f in c.decode(audio=0)]
    seconds = sum(f.samples for f in audio) / audio[0].sample_rate
    assert abs(seconds - 1.0) < 0.1  # 25 frames at 25 fps


def _cues(path: Path) -> list[tuple[Fraction, Fraction, str]]:
    """(start, length, text) of every non-empty cue of the first subtitle stream."""
    from filmcolor import subtitles

    with av.open(str(path)) as c:
        (s,) = c.streams.subtitles
        return [(p.pts * p.time_base, p.duration * p.time_base, text) for p in c.demux(s)
                if p.pts is not None and (text := subtitles.cue_text(s.codec_context.name, bytes(p)))]


@pytest.mark.parametrize("src_name,dst_name,codec", [("s.mp4", "out.mkv", "srt"), ("s.mkv", "out.mp4", "mov_text"),
                                                     ("s.mkv", "out.mov", "mov_text")])
def test_text_subtitles_change_form_with_the_container(clip, tmp_path, src_name, dst_name, codec):
    # MP4 holds text subtitles only as mov_text, Matroska as SubRip: before, a reel that changed
    # container lost them ("cannot go into matroska; dropped")
    src = clip(src_name, subtitles=True, frames=75, audio=())
    _, warnings = roundtrip(src, tmp_path / dst_name)
    assert [w for w in warnings if f"converted to {'subrip' if codec == 'srt' else 'mov_text'}" in w]
    with av.open(str(tmp_path / dst_name)) as c:
        assert [s.codec_context.name for s in c.streams.subtitles] == [codec]
    cues = _cues(tmp_path / dst_name)
    assert cues == _cues(src) and [t for _, _, t in cues] == ["Cue 1", "Cue 2", "Cue 3", "Cue 4"]


@pytest.mark.parametrize("codec,name,pix_fmt", [("ffv1", "m.mkv", "yuv420p"), ("prores", "m.mov", "yuv422p10le")])
def test_archival_codecs(clip, tmp_path, codec, name, pix_fmt):
    src = clip("src.mov", audio=("pcm_s16le",))
    dst = tmp_path / name
    roundtrip(src, dst, codec=codec)
    out = media.probe(dst)
    assert out.pix_fmt == pix_fmt
    assert video_times(dst) == video_times(src)
    (a_src,), (a_dst,) = side_packets(src), side_packets(dst)
    assert [d for _, d in a_dst] == [d for _, d in a_src]
    # Matroska counts in milliseconds: 1024/48000 s packets land on the nearest millisecond
    tol = Fraction(1, 2000) if name.endswith(".mkv") else 0
    assert all(abs(ta - tb) <= tol for (ta, _), (tb, _) in zip(a_src, a_dst))
    if codec == "ffv1":  # lossless
        assert all(np.array_equal(a, b) for a, b in zip(y_planes(src), y_planes(dst)))
    else:
        a = [y.astype(np.float64) for y in y_planes(src)]
        b = [(y.astype(np.float64) / 4) for y in y_planes(dst)]
        assert all(peak_signal_noise_ratio(x, y, data_range=255) >= 40 for x, y in zip(a, b))


@pytest.mark.parametrize("codec,name", [("h264", "a.mp4"), ("ffv1", "a.mkv"), ("prores", "a.mov")])
def test_same_frames_give_byte_identical_files(clip, tmp_path, codec, name):
    """Checksums hold: x264 is capped at AVX2 on AVX-512 CPUs (its AVX-512 code varied run to run),
    the muxer is bitexact (no random Matroska segment UID or muxing date) and 8-bit planes are
    widened for ProRes by a shift, not by swscale (whose yuv422p10le output varied)."""
    src = clip("src.mp4", frames=23, width=854, height=480, audio=("aac",))
    outs = []
    for i in range(5):
        dst = tmp_path / f"{i}{name}"
        roundtrip(src, dst, codec=codec)
        outs.append(dst.read_bytes())
    assert all(o == outs[0] for o in outs[1:])


@pytest.mark.parametrize("src_fmt,full", [("yuv420p", False), ("yuvj420p", True)])
def test_eight_bit_planes_widen_exactly_for_a_ten_bit_writer(src_fmt, full):
    rng = np.random.default_rng(0)
    frame = av.VideoFrame(854, 480, src_fmt)
    for i in range(3):
        view = media._plane_view(frame, i, np.uint8)
        view[...] = rng.integers(0, 256, view.shape, dtype=np.uint8)
    y8 = media._plane_view(frame, 0, np.uint8).astype(np.uint16)
    planes = media.frame_to_planes(frame, "yuv422p10le")
    assert planes.bit_depth == 10 and planes.full_range == full and planes.u.shape == (480, 427)
    assert np.array_equal(planes.y, (y8 << 2) | (y8 >> 6) if full else y8 << 2)
    if full:
        assert planes.y.max() <= 1023 and (planes.y[y8 == 255] == 1023).all()
    again = media.frame_to_planes(frame, "yuv422p10le")
    assert all(np.array_equal(a, b) for a, b in zip((planes.y, planes.u, planes.v), (again.y, again.u, again.v)))


def test_x264_is_capped_at_avx2_only_on_avx512_cpus():
    avx512 = "flags\t\t: sse2 avx avx2 fma bmi2 avx512f avx512bw avx512vl\n"
    assert media.x264_params(avx512) == "asm=AVX2"
    assert media.x264_params("flags : sse2 avx avx2 fma bmi2\n") == ""  # x264's own detection
    assert media.x264_params("flags : sse2 sse4_2\n") == ""  # never flags the CPU lacks
    assert media.x264_params("model name : some arm chip\n") == ""


def test_start_duration_selects_and_shifts(clip, tmp_path):
    src = clip("long.mkv", frames=50, audio=("aac",))
    frames = list(media.decode(src, start=0.4, duration=0.6))
    times = [f.pts * f.time_base for f in frames]
    assert times == [Fraction(k, 25) for k in range(10, 25)]
    dst = tmp_path / "seg.mkv"
    roundtrip(src, dst, start=0.4, duration=0.6)
    assert video_times(dst) == [t - Fraction(2, 5) for t in times]
    (src_audio,), (dst_audio,) = side_packets(src), side_packets(dst)
    expect = [(t - Fraction(2, 5), d) for t, d in src_audio if Fraction(2, 5) <= t < 1]
    assert dst_audio == expect and len(expect) > 20


def test_vfr_start_selection(clip):
    src = clip("vfr.mp4", vfr=True, frames=24)
    all_t = video_times(src)
    sel = [f.pts * f.time_base for f in media.decode(src, start=0.2, duration=0.5)]
    assert sel == [t for t in all_t if Fraction(1, 5) <= t < Fraction(7, 10)]


def test_writer_deletes_output_on_error(clip, tmp_path):
    src = clip("a.mp4")
    dst = tmp_path / "out.mp4"
    with pytest.raises(RuntimeError):
        with media.VideoWriter(src, dst, media.probe(src)) as w:
            for frame in media.decode(src):
                w.write(media.planes_to_frame(media.frame_to_planes(frame, w.pix_fmt), w.pix_fmt, frame))
                raise RuntimeError("boom")
    assert not dst.exists()


def test_writer_pix_fmt_choices(clip):
    info = media.probe(clip("a.mp4"))
    assert media.writer_pix_fmt("h264", info) == "yuv420p"
    assert media.writer_pix_fmt("prores", info) == "yuv422p10le"
    odd = media.probe(clip("odd.mkv", width=65, height=49, codec="ffv1"))
    assert media.writer_pix_fmt("h264", odd) == "yuv444p"
    assert media.writer_pix_fmt("ffv1", odd) == "yuv420p"


# --- planes --------------------------------------------------------------------------------------
def test_same_format_y_plane_is_bit_identical(clip):
    src = clip("a.mp4", width=66, height=50)  # width 66: line padding in the decoder's buffers
    for frame in media.decode(src):
        assert frame.planes[0].line_size > frame.width
        planes = media.frame_to_planes(frame, "yuv420p")
        ref = np.frombuffer(frame.planes[0], np.uint8).reshape(frame.height, -1)[:, : frame.width]
        assert np.array_equal(planes.y, ref)
        assert planes.u.shape == planes.v.shape == (25, 33)
        assert (planes.bit_depth, planes.full_range, planes.matrix) == (8, False, "bt601")


@pytest.mark.parametrize("pix_fmt", ["yuv420p", "yuv422p", "yuv444p", "yuv420p10le", "yuv422p10le", "yuv444p10le"])
def test_planes_roundtrip_odd_sizes(pix_fmt):
    rng = np.random.default_rng(1)
    frame = av.VideoFrame(65, 49, pix_fmt)
    frame.pts, frame.time_base = 7, Fraction(1, 90000)
    bits = 10 if pix_fmt.endswith("10le") else 8
    dtype = np.uint8 if bits == 8 else np.dtype("<u2")
    for plane in frame.planes:
        arr = np.frombuffer(plane, dtype).reshape(plane.height, -1)
        arr[:, : plane.width] = rng.integers(16, 235 << (bits - 8), size=(plane.height, plane.width))
    planes = media.frame_to_planes(frame, pix_fmt)
    sub = pix_fmt[3:6]
    cw, ch = {"420": (33, 25), "422": (33, 49), "444": (65, 49)}[sub]
    assert planes.y.shape == (49, 65) and planes.u.shape == (ch, cw)
    back = media.planes_to_frame(planes, pix_fmt, frame)
    assert (back.pts, back.time_base, back.format.name) == (7, Fraction(1, 90000), pix_fmt)
    again = media.frame_to_planes(back, pix_fmt)
    for a, b in zip((planes.y, planes.u, planes.v), (again.y, again.u, again.v)):
        assert np.array_equal(a, b)


def test_rgb_and_gray_sources_convert():
    grey = np.full((49, 65), 128, np.uint8)
    g = av.VideoFrame.from_ndarray(grey, format="gray")
    p = media.frame_to_planes(g, "yuv420p")
    assert p.u.shape == (25, 33) and np.all(np.abs(p.u.astype(int) - 128) <= 1)
    rgb = np.zeros((48, 64, 3), np.uint8)
    rgb[..., 0] = 200
    f = av.VideoFrame.from_ndarray(rgb, format="rgb24")
    p = media.frame_to_planes(f, "yuv444p")
    assert not p.full_range and p.v.mean() > 200  # strong red -> high V


def test_planes_to_frame_converts_layout_for_the_writer():
    frame = av.VideoFrame(64, 48, "yuv420p")
    frame.pts, frame.time_base = 3, Fraction(1, 25)
    planes = media.frame_to_planes(frame, "yuv420p")
    out = media.planes_to_frame(planes, "yuv444p", frame)
    assert out.format.name == "yuv444p" and out.pts == 3


def test_full_range_frame_tags():
    frame = av.VideoFrame(64, 48, "yuvj420p")
    frame.pts, frame.time_base = 0, Fraction(1, 25)
    planes = media.frame_to_planes(frame, "yuv420p")
    assert planes.full_range
    out = media.planes_to_frame(planes, "yuv420p", frame)
    assert out.color_range == 2


# --- probe and errors ----------------------------------------------------------------------------
def test_probe_reads_layout(clip):
    src = clip("p.mkv", fps="24000/1001", audio=("aac", "mp3"), subtitles=True)
    info = media.probe(src)
    assert (info.width, info.height, info.pix_fmt, info.bit_depth) == (64, 48, "yuv420p", 8)
    assert info.fps == Fraction(24000, 1001) and info.time_base == Fraction(1, 1000)
    assert (info.audio_streams, info.subtitle_streams, info.is_still) == (2, 1, False)
    assert info.duration == pytest.approx(0.5, abs=0.05)


def test_is_still_path():
    assert media.is_still_path("a/b.JPG") and media.is_still_path("x.tiff") and media.is_still_path("p.webp")
    assert not media.is_still_path("film.mp4")


def expect_input_error(path: Path, *words: str) -> str:
    with pytest.raises(InputError) as err:
        media.probe(path)
    msg = str(err.value)
    assert msg.startswith(str(path) + ": ")
    assert "\n" not in msg
    for w in words:
        assert w in msg
    return msg


def test_probe_missing_directory_empty(tmp_path):
    expect_input_error(tmp_path / "nope.mp4", "no such file")
    expect_input_error(tmp_path, "directory")
    empty = tmp_path / "empty.mp4"
    empty.touch()
    expect_input_error(empty, "empty")


def test_probe_text_named_mp4(tmp_path):
    text = tmp_path / "notes.mp4"
    text.write_text("this is a shopping list, not a film\n" * 20)
    expect_input_error(text, "not a media file")


@pytest.mark.parametrize("name", ["cut.mp4", "cut.mkv", "cut.avi", "cut.mov"])
def test_probe_truncated(clip, tmp_path, name):
    src = clip(name, frames=24)
    data = src.read_bytes()
    cut = tmp_path / ("half_" + name)
    cut.write_bytes(data[: len(data) // 2])
    expect_input_error(cut, "truncated")


def test_probe_audio_only(tmp_path):
    path = tmp_path / "song.mp4"
    with av.open(str(path), "w") as out:
        a = out.add_stream("aac", rate=48000)
        a.layout, a.format = "stereo", "fltp"
        for frame in _tone(0.3, 48000, "fltp", "stereo", 440.0, 1024):
            out.mux(a.encode(frame))
        out.mux(a.encode(None))
    expect_input_error(path, "no video stream", "audio only")
    subtitles = tmp_path / "reel.srt"  # a sidecar given as the film, not with --add-track
    subtitles.write_text("1\n00:00:00,100 --> 00:00:00,400\nHello\n\n")
    expect_input_error(subtitles, "no video stream", "subtitles only")


def test_probe_no_decodable_frames(clip, tmp_path):
    data = bytearray(clip("z.mp4", audio=()).read_bytes())
    i = data.find(b"mdat")
    size = int.from_bytes(data[i - 4:i], "big")
    data[i + 4:i - 4 + size] = bytes(size - 8)  # zero the coded pictures, keep the index
    bad = tmp_path / "zeros.mp4"
    bad.write_bytes(bytes(data))
    expect_input_error(bad, "no decodable video frames")


def test_damaged_middle_fails_cleanly_or_warns(clip, tmp_path):
    # Garbage over the middle of a Matroska film: the decoder conceals what it can with a warning;
    # when the rest of the video cannot be read, decode fails with InputError instead of a short film.
    data = bytearray(clip("d.mkv", frames=48, width=128, height=96, audio=()).read_bytes())
    rng = np.random.default_rng(0)
    lo, hi = int(len(data) * 0.45), int(len(data) * 0.55)
    data[lo:hi] = rng.integers(0, 256, hi - lo, dtype=np.uint8).tobytes()
    bad = tmp_path / "damaged.mkv"
    bad.write_bytes(bytes(data))
    media.probe(bad)  # the header is intact
    warnings: list[str] = []
    with pytest.raises(InputError, match="damaged or truncated"):
        for _ in media.decode(bad, warn=warnings.append):
            pass
    assert warnings and "damaged" in warnings[0]


def test_an_avi_film_comes_back_as_mkv_by_default_since_ffmpeg_reads_h264_in_avi_a_frame_late(tmp_path, clip):
    from filmcolor import outputs, pipeline

    src = clip("a.avi", audio=("mp3",), color=False)
    assert outputs.default_output(src).name == "a.color.mkv"
    assert outputs.default_output(src, codec="ffv1").name == "a.color.avi"  # FFV1 in AVI reads right
    # the lag itself: x264 (B-frames off) in AVI, frames 0, 1, 2 ... read back by FFmpeg as 1, 2, 3 ...
    lagged = tmp_path / "x.avi"
    with av.open(str(lagged), "w") as out:
        vs = out.add_stream("libx264", rate=25)
        vs.width, vs.height, vs.pix_fmt, vs.options = 64, 48, "yuv420p", {"bf": "0"}
        for i in range(5):
            f = av.VideoFrame.from_ndarray(synth.synthetic_frame(i, 64, 48), format="rgb24").reformat(format="yuv420p")
            f.pts = i
            out.mux(vs.encode(f))
        out.mux(vs.encode())
    with av.open(str(lagged)) as c:
        assert [f.pts for f in c.decode(video=0)][:3] == [1, 2, 3]
    from filmcolor.config import RunConfig
    from helpers import tiny_model

    said: list[str] = []
    config = RunConfig(model=str(tiny_model(tmp_path / "t.safetensors")), render_size=48)
    pipeline.colorize_file(src, tmp_path / "out.avi", config, warn=said.append)
    assert said == [f"{tmp_path / 'out.avi'}: H.264 in AVI plays a frame late against its sound in FFmpeg-based "
                    "players (mpv, ffplay); .mkv keeps them together"]
