"""tags.py: which labels a re-encoded film keeps, SMPTE timecode arithmetic, chapters of an excerpt."""

from __future__ import annotations

from fractions import Fraction

import pytest

from filmcolor import tags


def test_carried_tags_drop_what_describes_the_old_file_only():
    src = {"title": "Reel 3", "COMMENT": "scan 2K", "language": "fra", "timecode": "01:00:00:00",
           "creation_time": "1952-03-01T00:00:00.000000Z", "ENCODER": "Lavf62", "encoder": "x",
           "major_brand": "isom", "minor_version": "512", "compatible_brands": "isomavc1",
           "DURATION": "00:00:02.000000000", "BPS-eng": "1200", "NUMBER_OF_FRAMES": "48",
           "NUMBER_OF_BYTES-eng": "9", "_STATISTICS_WRITING_APP-eng": "mkvmerge", "vendor_id": "FFMP",
           "handler_name": "French dub"}
    kept = {"title", "COMMENT", "language", "timecode", "creation_time", "handler_name"}
    assert set(tags.carried_tags(src, reencoded=True)) == kept
    assert set(tags.carried_tags(src)) == kept | {"vendor_id"}  # a copied stream is still that encoder's
    assert tags.carried_tags(None) == {}


@pytest.mark.parametrize("timecode,fps,frames", [
    ("00:00:00:00", 24, 0), ("01:00:00:00", 24, 86400), ("10:00:00:00", 25, 900000),
    ("00:01:00;02", 30, 1800),      # 29.97 drop-frame: ;00 and ;01 do not exist at minute 1
    ("00:10:00;00", 30, 17982),     # ... but do every tenth minute
    ("01:00:00;00", 30, 107892),
    ("00:01:00;04", 60, 3600),      # 59.94 drops four
])
def test_timecode_known_values(timecode, fps, frames):
    assert tags.timecode_to_frames(timecode, fps) == frames
    assert tags.frames_to_timecode(frames, fps, drop_frame=";" in timecode) == timecode


@pytest.mark.parametrize("fps,drop", [(24, False), (25, False), (30, False), (30, True), (60, True)])
def test_timecode_round_trips_across_minute_and_hour_edges(fps, drop):
    for n in list(range(0, 40_000, 7)) + list(range(107_800, 108_000)):
        tc = tags.frames_to_timecode(n, fps, drop)
        assert tags.timecode_to_frames(tc, fps) == n, tc


def test_shift_timecode_keeps_style_and_leaves_strange_strings_alone():
    assert tags.shift_timecode("01:00:00:00", 25, Fraction(25)) == "01:00:01:00"
    assert tags.shift_timecode("00:00:59;29", 1, Fraction(30000, 1001)) == "00:01:00;02"
    assert tags.shift_timecode("00:00:59:23", 1, Fraction(24000, 1001)) == "00:01:00:00"
    assert tags.shift_timecode("23:59:59:24", 1, 25) == "00:00:00:00"  # wraps at 24 h
    assert tags.shift_timecode("reel three", 10, 25) == "reel three"
    assert tags.shift_timecode("00:00:00:30", 10, 25) == "00:00:00:30"  # frame field >= fps
    assert tags.timecode_key({"TIMECODE": "x"}) == "TIMECODE" and tags.timecode_key({"title": "x"}) is None


def test_frames_before_start():
    assert tags.frames_before(1, 0, 25) == 25
    assert tags.frames_before(Fraction(1001, 1000), 0, Fraction(30000, 1001)) == 30
    assert tags.frames_before(Fraction(41, 1000), 0, 25) == 2  # frame 1 is at 0.040 s, before 0.041
    assert tags.frames_before(2, 1.5, 24) == 12  # counted from the stream's first frame
    assert tags.frames_before(0, 1.5, 24) == 0


def test_carried_chapters_cut_to_the_written_stretch():
    ms = Fraction(1, 1000)
    chapters = [{"id": 7, "start": 0, "end": 1000, "time_base": ms, "metadata": {"title": "Opening"}},
                {"id": 8, "start": 1000, "end": 3000, "time_base": ms, "metadata": {"title": "Harbour"}},
                {"id": 9, "start": 3000, "end": 4000, "time_base": ms, "metadata": {"title": "End"}}]
    assert [(c["start"], c["end"], c["id"]) for c in tags.carried_chapters(chapters)] == \
        [(0, 1000, 1), (1000, 3000, 2), (3000, 4000, 3)]
    cut = tags.carried_chapters(chapters, Fraction(3, 2), Fraction(3))
    assert [(c["start"], c["end"], c["metadata"]["title"]) for c in cut] == [(0, 1500, "Harbour")]
    assert [c["metadata"]["title"] for c in tags.carried_chapters(chapters, Fraction(1))] == ["Harbour", "End"]


def test_sound_lead_from_a_broadcast_wav_time_reference():
    from fractions import Fraction

    assert tags.sound_lead("172752000", 48000, "01:00:00:00", 24) == 1  # recorder rolled 1 s before frame one
    assert tags.sound_lead("172848000", 48000, "01:00:00:00", 25) == -1  # the sound starts 1 s in
    assert tags.sound_lead("0", 48000, "01:00:00:00", 24) is None  # unset
    assert tags.sound_lead("172800000", 48000, None, 24) is None
    assert tags.sound_lead("x", 48000, "01:00:00:00", 24) is None
    # 23.976: timecode runs slow against the clock, so 01:00:00:00 is 3603.6 s after midnight
    assert tags.sound_lead(str(3600 * 48000), 48000, "01:00:00:00", Fraction(24000, 1001)) == Fraction(18, 5)


def test_an_mxf_files_identity_stays_with_it_its_timecode_and_names_come_along():
    mxf = {"operational_pattern_ul": "060e2b34.04010101.0d010201.01010900", "uid": "adab4424-2f25",
           "generation_uid": "adab4424-2f26", "company_name": "FFmpeg", "product_name": "OP1a Muxer",
           "product_version": "62.12.102", "application_platform": "Lavf (linux)",
           "material_package_umid": "0x060A2B34", "file_package_umid": "0x060A2B35",
           "modification_date": "2024-01-01T00:00:00.000000Z", "timecode": "10:00:00:00",
           "material_package_name": "Reel 4 of 9", "reel_name": "R4"}
    assert tags.carried_tags(mxf) == {"timecode": "10:00:00:00", "material_package_name": "Reel 4 of 9",
                                      "reel_name": "R4"}
    assert tags.carried_tags({"FILE_PACKAGE_UMID": "0x06", "TIMECODE": "10:00:00:00"}) == {"TIMECODE": "10:00:00:00"}


def test_a_sidecars_name_gives_its_language_as_mp4_stores_it():
    assert tags.language_in_name("reel.en.srt") == "eng"  # MP4 drops two-letter codes without a word
    assert tags.language_in_name("reel.FR.srt") == "fre" and tags.language_in_name("reel.ger.wav") == "ger"
    assert tags.language_in_name("reel.xx.srt") == "xx"  # unknown: kept as given
    assert tags.language_in_name("reel.srt") is None and tags.language_in_name("reel.notes.srt") is None
