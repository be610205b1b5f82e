"""`filmcolor info`: what a film, a folder of scans or a photo holds, and what `run` would write."""

from __future__ import annotations

import json
import wave
from pathlib import Path

import cv2
import numpy as np
from click.testing import CliRunner

from filmcolor import synth
from filmcolor.cli import main
from filmcolor.config import RunConfig
from filmcolor.survey import describe, survey
from helpers import grey_pictures, labelled_film, write_pictures


def _listing(folder: Path) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for p in folder.rglob("*")}


def test_a_film_s_picture_tracks_labels_and_output_are_reported(tmp_path):
    film = labelled_film(tmp_path / "reel.mkv", color=False)
    (tmp_path / "reel.en.srt").write_text("1\n00:00:00,000 --> 00:00:01,000\nHello\n")
    before = _listing(tmp_path)
    report = survey(film)
    assert _listing(tmp_path) == before  # nothing written
    p = report["picture"]
    assert report["kind"] == "film" and (p["width"], p["height"], p["fps"], p["frames"]) == (64, 48, "25", 50)
    assert p["timecode"] == "01:00:00:00" and p["scan"] == "progressive" and p["bit_depth"] == 8
    assert [(t["kind"], t["language"], t["title"]) for t in report["tracks"]] == [
        ("sound", "fra", "French dub"), ("sound", "eng", "Commentary"), ("subtitles", "eng", "Cues")]
    assert report["tracks"][0]["channels"] >= 1
    assert report["added"] == [{"path": str(tmp_path / "reel.en.srt"), "kind": "subtitles"}]
    assert (report["chapters"], report["attachments"]) == (2, 2)
    assert report["output"] == {"path": str(tmp_path / "reel.color.mkv"), "codec": "h264", "pix_fmt": "yuv420p",
                                "exists": False}
    assert report["inside_bars"] is None and report["warnings"] == []
    text = "\n".join(describe(report))
    assert "timecode 01:00:00:00" in text and "French dub" in text and "reel.en.srt (subtitles)" in text


def test_bars_an_existing_output_and_a_codec_are_reported_as_run_would_meet_them(tmp_path):
    film = synth.make_clip(tmp_path / "boxed.avi", width=96, height=48, bars=(0, 16), color=False, frames=6)
    report = survey(film, RunConfig(codec="ffv1"))
    assert report["inside_bars"]["text"] == "64x48 at (16, 0) of 96x48"
    assert report["output"]["path"] == str(tmp_path / "boxed.color.avi") and report["output"]["codec"] == "ffv1"
    assert survey(film)["output"]["path"] == str(tmp_path / "boxed.color.mkv")  # H.264 would lag in AVI
    assert survey(film, output=tmp_path / "x.avi")["warnings"][0].startswith(f"{tmp_path / 'x.avi'}: ")
    (tmp_path / "boxed.color.mkv").write_bytes(b"old")
    again = survey(film)
    assert again["output"]["exists"] and "exists (run needs --overwrite)" in "\n".join(describe(again))
    assert survey(film, RunConfig(bars="off"))["inside_bars"] is None


def test_a_folder_of_scans_reports_its_pictures_and_the_sound_beside_them(tmp_path):
    reel = write_pictures(tmp_path / "reel1" / "reel1.%04d.dpx", "dpx", "rgb48le", grey_pictures(6),
                          source_format="rgb24", first=86400)
    with wave.open(str(reel / "reel1_optical.wav"), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(48000)
        w.writeframes(np.zeros(12000, "<i2").tobytes())
    report = survey(reel, RunConfig(frames_as="dpx"))
    assert report["kind"] == "scans" and report["picture"]["frames"] == 6 and report["picture"]["fps"] == "24"
    assert report["picture"]["range"] == "RGB"  # RGB scans have no video range
    assert report["added"] == [{"path": str(reel / "reel1_optical.wav"), "kind": "sound"}]
    assert report["output"] == {"path": str(tmp_path / "reel1.color"), "pictures": "dpx", "exists": False}


def test_a_photo_in_a_black_mount(tmp_path):
    mounted = np.zeros((80, 96), np.uint8)  # a grey file
    mounted[16:64, 16:80] = synth.synthetic_frame(0, 64, 48, color=False)[..., 0]
    cv2.imwrite(str(tmp_path / "print.png"), mounted)
    report = survey(tmp_path / "print.png")
    assert report["kind"] == "photo" and report["picture"]["width"] == 96 and report["picture"]["grey_file"] is True
    assert report["inside_bars"]["text"] == "64x48 at (16, 16) of 96x80"
    assert report["output"]["path"] == str(tmp_path / "print.color.png")


def test_the_cli_goes_on_past_an_unreadable_input_and_exits_1(tmp_path):
    film = synth.make_clip(tmp_path / "a.mp4", frames=6, color=False)
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a film at all" * 10)
    r = CliRunner().invoke(main, ["info", str(broken), str(film)])
    assert r.exit_code == 1
    assert f"{broken}: " in r.stderr and f"{film}: film" in r.stdout and "output" in r.stdout
    assert "filmcolor info: 2 inputs: 1 film, 0 with black bars, 0 in colour already, 0 with an output already, " \
           "1 unreadable" in r.stdout
    r = CliRunner().invoke(main, ["info", "--json", str(film), str(tmp_path / "missing.mp4")])
    data = json.loads(r.stdout)
    assert r.exit_code == 1 and data[0]["kind"] == "film" and data[1] == {"input": str(tmp_path / "missing.mp4"),
                                                                          "error": "no such file"}
    assert CliRunner().invoke(main, ["info", str(film), "--codec", "vp8"]).exit_code == 2


def test_info_takes_the_settings_run_would_take(tmp_path):
    film = synth.make_clip(tmp_path / "boxed.mp4", width=96, height=48, bars=(0, 16), color=False, audio=(), frames=6)
    seen = {}
    for args in ([], ["--set", "bars=off"], ["--set", "bars=off", "--bars", "auto"], ["--set", "codec=ffv1"]):
        r = CliRunner().invoke(main, ["info", "--json", str(film), *args])
        assert r.exit_code == 0, r.output
        seen[" ".join(args)] = json.loads(r.stdout)[0]
    assert seen[""]["inside_bars"]["text"] == "64x48 at (16, 0) of 96x48"
    assert seen["--set bars=off"]["inside_bars"] is None
    assert seen["--set bars=off --bars auto"]["inside_bars"] == seen[""]["inside_bars"]  # the flag over --set
    assert seen["--set codec=ffv1"]["output"]["codec"] == "ffv1"


def _tinted_film(path: Path, tint: tuple[float, float, float], frames: int = 12) -> Path:
    """A B&W film printed on toned stock: every frame the synthetic grey picture times ``tint`` (RGB)."""
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 96, 64, "yuv420p"
        for i in range(frames):
            grey = synth.synthetic_frame(i, 96, 64, color=False).astype(np.float32)
            frame = av.VideoFrame.from_ndarray(np.clip(grey * np.float32(tint), 0, 255).astype(np.uint8),
                                               format="rgb24").reformat(format="yuv420p")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    return path


def test_hue_variety_tells_colour_from_black_and_white_and_tints():
    from filmcolor.color import hue_variety

    grey = np.full((32, 32), 128, np.uint8)
    assert hue_variety(grey, grey) == 0.0
    ramp = np.linspace(0, 40, 32 * 32).reshape(32, 32)
    sepia_u, sepia_v = (128 - 0.4 * ramp).astype(np.uint8), (128 + 0.6 * ramp).astype(np.uint8)  # one hue, any strength
    assert hue_variety(sepia_u, sepia_v) == 0.0
    two_u, two_v = sepia_u.copy(), sepia_v.copy()
    two_u[:, :8], two_v[:, :8] = 170, 110  # a quarter of the picture in a blue of its own
    assert hue_variety(two_u, two_v) > 20


def test_a_film_in_colour_already_is_named_a_toned_one_is_not(tmp_path):
    from filmcolor import look

    said: list[str] = []
    colour = synth.make_clip(tmp_path / "colour.mp4", frames=12, color=True, audio=())
    seen = look.look_at(colour, synth_info(colour), RunConfig())
    assert seen.in_colour and seen.coloured == seen.sampled >= 10
    toned = (_tinted_film(tmp_path / "sepia.mp4", (1.0, 0.85, 0.6)),
             _tinted_film(tmp_path / "blue.mp4", (0.7, 0.85, 1.0)))
    for film in (*toned, synth.make_clip(tmp_path / "bw.mp4", frames=12, color=False, audio=())):
        seen = look.look_at(film, synth_info(film), RunConfig())
        assert not seen.in_colour and seen.coloured == 0, film
    seen = look.look_at(colour, synth_info(colour), RunConfig())
    look.warn_in_colour(colour, seen, said.append)
    n = seen.sampled
    assert said == [f"{colour}: the film is in colour already ({n} of {n} sampled frames); its colours are replaced "
                    "by the model's"]
    assert survey(colour)["picture"]["in_colour"] and survey(colour)["warnings"] == said
    assert not survey(tmp_path / "sepia.mp4")["picture"]["in_colour"]


def synth_info(path: Path):
    from filmcolor import media

    return media.probe(path)


def test_a_preview_of_a_colour_photo_says_it_is_in_colour_already(tmp_path):
    from filmcolor import preview
    from helpers import tiny_model

    photo = tmp_path / "colour.png"
    cv2.imwrite(str(photo), synth.synthetic_frame(0, 96, 64)[..., ::-1])
    said: list[str] = []
    cfg = RunConfig(model=str(tiny_model(tmp_path / "t.safetensors")), render_size=48)
    preview.write_preview(photo, tmp_path / "sheet.png", 1, cfg, warn=said.append)
    assert said == [f"{photo}: the photo is in colour already; its colours are replaced by the model's"]
    grey = tmp_path / "grey.png"
    cv2.imwrite(str(grey), synth.synthetic_frame(0, 96, 64, color=False))
    preview.write_preview(grey, tmp_path / "sheet2.png", 1, cfg, warn=said.append)
    assert len(said) == 1


def test_a_sound_track_is_named_by_its_format_not_its_decoder(tmp_path):
    # MP3 sound was listed as "mp3float", the name of FFmpeg's decoder, which no archivist's catalogue uses
    src = synth.make_clip(tmp_path / "web.mkv", frames=12, audio=("libmp3lame",), color=False)
    assert [t["codec"] for t in survey(src)["tracks"]] == ["mp3"]
