"""`filmcolor run` in-process with click's CliRunner: exit codes, one-line errors, files left behind."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import av
import click
import numpy as np
import pytest
from click.testing import CliRunner

from filmcolor import __version__, pipeline, synth
from filmcolor.cli import main
from helpers import grey_pictures, labelled_film, read_labels, sha256, tiny_model, write_grey_frames, write_pictures


@pytest.fixture(scope="module")
def model_path(tmp_path_factory) -> Path:
    return tiny_model(tmp_path_factory.mktemp("model") / "tiny.safetensors")


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return synth.make_clip(tmp_path_factory.mktemp("clip") / "reel.mp4", frames=12, color=False)


def run(*args: str):
    return CliRunner().invoke(main, ["run", *map(str, args)], catch_exceptions=False)


def listing(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


def test_version_and_help():
    r = CliRunner().invoke(main, ["--version"])
    assert r.exit_code == 0 and __version__ in r.output
    r = CliRunner().invoke(main, ["run", "--help"])
    assert r.exit_code == 0 and "--saturation" in r.output and "[default: 1.0" in r.output


@pytest.mark.parametrize("command", ["run", "batch", "eval"])
def test_help_names_every_setting_a_flag_or_a_line_with_its_default(command):
    """STYLE 9: a short list of flags, the rest are settings; help shows every one of them somewhere."""
    from dataclasses import fields

    from filmcolor.cli import SettingsCommand
    from filmcolor.config import RunConfig

    cmd = main.commands[command]
    assert isinstance(cmd, SettingsCommand)
    flags = {p.name for p in cmd.params}
    if command == "run":  # the rest a film tool needs on every run, flags; the tuning, settings
        assert len([p for p in cmd.params if isinstance(p, click.Option)]) <= 22
    out = " ".join(CliRunner().invoke(main, [command, "--help"]).output.split())
    settings = out[out.index("Settings without a flag"):]
    assert "render_size=192" in settings and "crf=18" in settings or command == "eval"
    not_for = {"eval": {"overwrite", "codec", "frames_as", "sequence_fps", "scan_transfer", "deflicker", "crf", "preset"},
               "batch": {"start", "duration", "overwrite"}}  # eval writes no film; batch colours whole reels
    skipped = not_for.get(command, set())
    for field in fields(RunConfig):
        if field.name not in skipped:
            assert field.name in flags or f"{field.name}=" in settings, (command, field.name)


def test_run_keeps_the_films_labels(tmp_path, model_path):
    """Title, track languages and names, flags, timecode, chapters, fonts and cover survive `run`."""
    src = labelled_film(tmp_path / "reel.mkv", color=False)
    r = run(src, "--model", model_path, "--device", "cpu", "--set", "render_size=48", "--smooth", "off")
    assert r.exit_code == 0, r.output
    assert read_labels(tmp_path / "reel.color.mkv") == read_labels(src)


@pytest.mark.parametrize("frames", [1, 2])
def test_a_film_of_one_or_two_frames(tmp_path, model_path, frames):
    # the flow smoother looks two frames ahead; a film shorter than that must still come out whole
    src = synth.make_clip(tmp_path / "short.mp4", frames=frames)
    r = run(src, "--model", model_path, "--device", "cpu", "--set", "render_size=48")
    assert r.exit_code == 0, r.output
    assert f"{frames} frame{'s' if frames > 1 else ''} in" in r.stderr
    with av.open(str(tmp_path / "short.color.mp4")) as c:
        assert sum(1 for _ in c.decode(video=0)) == frames


def test_a_damaged_tiff_gives_one_line_not_libtiffs_as_well(tmp_path, model_path):
    bad = tmp_path / "scan.tif"
    bad.write_bytes(b"II*\x00\x08\x00\x00\x00\x00\x00\x00\x00\x00\x00")  # a header, a directory of no entries
    # a real process: libtiff's complaints come through OpenCV's C-level log, not sys.stderr
    r = subprocess.run([sys.executable, "-m", "filmcolor", "run", str(bad), "--model", str(model_path)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == [f"filmcolor: {bad}: not a readable image (JPEG, PNG, TIFF, WebP, "
                                             "BMP, JPEG 2000 or PNM)"]


@pytest.mark.slow
def test_sigterm_unwinds_like_ctrl_c_and_leaves_no_half_file(tmp_path, model_path):
    # a job scheduler or `docker stop` sends SIGTERM: Python's default ended the process on the
    # spot and left the hidden .part file of the film being written
    src = synth.make_clip(tmp_path / "long.mp4", frames=1500, width=320, height=240, audio=(), color=False)
    out = tmp_path / "out"
    out.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "filmcolor", "run", str(src), "-o", str(out / "long.mp4"),
                             "--model", str(model_path), "--set", "render_size=64", "-q"],
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None and not list(out.glob(".*.part*")):
            time.sleep(0.02)
        assert proc.poll() is None, "the run ended before it could be stopped; make the film longer"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143
    assert err.strip() == "filmcolor: terminated; no output was left behind"
    assert list(out.iterdir()) == []


@pytest.mark.slow
def test_a_run_killed_outright_leaves_a_hidden_part_that_the_next_run_of_that_output_removes(tmp_path, model_path):
    # SIGKILL, the OOM killer or a power cut give a run no chance to delete its temp file itself
    src = synth.make_clip(tmp_path / "long.mp4", frames=1500, width=320, height=240, audio=(), color=False)
    out = tmp_path / "out"
    out.mkdir()
    args = [sys.executable, "-m", "filmcolor", "run", str(src), "-o", str(out / "long.mp4"), "--model",
            str(model_path), "--set", "render_size=64", "-q"]
    proc = subprocess.Popen(args, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None and not list(out.glob(".*.part*")):
            time.sleep(0.02)
        assert proc.poll() is None, "the run ended before it could be stopped; make the film longer"
        proc.kill()
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    left = list(out.iterdir())
    assert len(left) == 1 and left[0].name.startswith(".long.filmcolor-") and ".part" in left[0].name
    r = subprocess.run([*args, "--duration", "0.2"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in out.iterdir()) == ["long.mp4"]


def test_a_folder_of_numbered_scans_is_coloured_as_one_film(tmp_path, model_path):
    # how restorers receive film: one DPX (or TIFF) file per frame, numbered from the reel's timecode
    folder = write_pictures(tmp_path / "reel1" / "reel1.%07d.dpx", "dpx", "gbrp10le", grey_pictures(12), first=86400)
    assert len(list(folder.iterdir())) == 12 and (folder / "reel1.0086400.dpx").is_file()
    r = run(folder, "--model", model_path, "--set", "render_size=48", "--fps", "24000/1001")
    assert r.exit_code == 0, r.output
    assert "12 frames" in r.stderr and listing(tmp_path) == {"reel1", "reel1.color.mkv"}
    with av.open(str(tmp_path / "reel1.color.mkv")) as c:
        assert c.streams.video[0].average_rate == Fraction(24000, 1001)
        assert sum(1 for _ in c.decode(video=0)) == 12
    # a timecode counts frames at the sequence's own --fps: 10 frames in at 30 fps leaves 2 of 12
    r = run(folder, "--model", model_path, "--set", "render_size=48", "--fps", "30", "--start", "00:00:00:10",
            "-o", tmp_path / "tail.mkv")
    assert r.exit_code == 0 and "2 frames" in r.stderr, r.output
    (tmp_path / "tail.mkv").unlink()
    (folder / "reel1.0086405.dpx").unlink()  # a missing scan would end the film there: refused instead
    r = run(folder, "--model", model_path, "-o", tmp_path / "x.mkv")
    assert r.exit_code == 1 and "has gaps: frame 86405 missing" in r.stderr
    assert run(folder, "--fps", "fast").exit_code == 2


def test_a_full_disk_part_way_is_a_failure_of_its_own_not_bad_input_nor_usage(tmp_path, clip, model_path,
                                                                               monkeypatch):
    import errno

    from filmcolor import media

    def full(self, frame):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(media.VideoWriter, "write", full)
    r = run(clip, "-o", tmp_path / "out.mp4", "--model", model_path, "--set", "render_size=48")
    assert r.exit_code == 3 and listing(tmp_path) == set()  # 1 is bad input, 2 usage; nothing half-written
    assert r.stderr.strip() == f"filmcolor: {tmp_path / 'out.mp4'}: cannot write: No space left on device"


def test_run_writes_output(tmp_path, clip, model_path):
    src = tmp_path / "reel.mp4"
    src.write_bytes(clip.read_bytes())
    before = sha256(src)
    r = run(src, "--model", model_path, "--device", "cpu", "--set", "render_size=48", "--smooth", "off")
    assert r.exit_code == 0, r.output
    out = tmp_path / "reel.color.mp4"
    assert out.is_file() and listing(tmp_path) == {"reel.mp4", "reel.color.mp4"}
    assert "wrote" in r.stderr and "12 frames" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert sha256(src) == before
    with av.open(str(out)) as c:
        assert sum(1 for _ in c.decode(video=0)) == 12
    # second run: refuses to overwrite (usage error), then --overwrite works; --quiet prints nothing
    r = run(src, "--model", model_path)
    assert r.exit_code == 2 and "already exists" in r.stderr
    r = run(src, "--model", model_path, "--overwrite", "-q", "--set", "render_size=48")
    assert r.exit_code == 0 and r.stderr == "" and r.stdout == ""


def test_output_option_and_preview(tmp_path, clip, model_path):
    out = tmp_path / "mine.mkv"
    r = run(clip, "-o", out, "--model", model_path, "--set", "render_size=48", "--start", "0:00.2", "--duration", "0.2")
    assert r.exit_code == 0, r.output
    with av.open(str(out)) as c:
        assert sum(1 for _ in c.decode(video=0)) == 5
    png = tmp_path / "p.png"
    r = run(clip, "--preview", "2", "-o", png, "--model", model_path, "--set", "render_size=48")
    assert r.exit_code == 0, r.output
    import cv2

    assert cv2.imread(str(png)).shape == (2 * 48, 2 * 64, 3)


def test_preset_and_flag_override(tmp_path, clip, model_path):
    out = tmp_path / "master.mkv"
    r = run(clip, "--preset", "archival", "-o", out, "--model", model_path, "--set", "render_size=48")
    assert r.exit_code == 0, r.output
    with av.open(str(out)) as c:
        assert c.streams.video[0].codec_context.name == "ffv1"
    out2 = tmp_path / "h264.mkv"
    r = run(clip, "--preset", "archival", "--codec", "h264", "-o", out2, "--model", model_path, "--set", "render_size=48")
    assert r.exit_code == 0, r.output
    with av.open(str(out2)) as c:
        assert c.streams.video[0].codec_context.name == "h264"


def _x264_options(path: Path) -> str:
    """The option string x264 writes into its first packet (SEI): how the film was encoded."""
    with av.open(str(path)) as c:
        data = bytes(next(c.demux(video=0)))
    start = data.index(b"x264 - core")
    return data[start:data.index(b"\x00", start)].decode()


def test_a_preset_file_of_ones_own_and_set_reach_every_setting(tmp_path, clip, model_path):
    common = ["--model", model_path, "--set", "render_size=48"]
    bare = tmp_path / "mine.toml"
    bare.write_text('codec = "ffv1"\nsmooth = "off"\n')  # run settings alone, without a [run] header
    r = run(clip, "--preset", bare, "-o", tmp_path / "a.mkv", *common)
    assert r.exit_code == 0, r.output
    with av.open(str(tmp_path / "a.mkv")) as c:
        assert c.streams.video[0].codec_context.name == "ffv1"
    table = tmp_path / "table.toml"
    table.write_text('[run]\ncodec = "ffv1"\ncrf = 30\n')
    # the file, then --set (the last of a key wins; also keys without a flag: x264's speed preset), then flags
    r = run(clip, "--preset", table, "--set", "codec=ffv1", "--set", "preset=ultrafast", "--set", "crf=40",
            "--set", "crf=12", "--codec", "h264", "-o", tmp_path / "b.mp4", *common)
    assert r.exit_code == 0, r.output
    options = _x264_options(tmp_path / "b.mp4")
    assert "subme=0" in options and "crf=12.0" in options, options  # ultrafast; the last --set over the file
    assert run(clip, "-o", tmp_path / "c.mp4", *common).exit_code == 0
    assert "subme=0" not in _x264_options(tmp_path / "c.mp4")  # veryfast without --set
    for args, said in [(["--set", "cut_treshold=0.5"], "unknown setting: cut_treshold; known: model"),
                       (["--set", "batch_size=1.5"], "batch_size must be a whole number, got 1.5"),
                       (["--set", "smooth"], "expected KEY=VALUE, got 'smooth'"),
                       (["--preset", tmp_path / "nope.toml"], f"preset file {tmp_path / 'nope.toml'}: No such file"),
                       (["--preset", "finetune"], "preset 'finetune' has no [run] table"),
                       (["--crf", "12"], "--crf is a setting without a flag: give --set crf=VALUE"),
                       (["--render-size=64"], "--render-size is a setting without a flag: give --set render_size=")]:
        r = run(clip, *args, "-o", tmp_path / "x.mp4", *common)
        assert r.exit_code == 2 and said in " ".join(r.stderr.split()), r.stderr
    assert not (tmp_path / "x.mp4").exists()


def test_an_added_subtitle_track_the_output_cannot_hold_is_refused_before_the_colouring(tmp_path, clip, model_path,
                                                                                       monkeypatch):
    # it was dropped with a warning after the whole film had been coloured; a sidecar the film brings by
    # itself (reel.srt) still is, since nobody named it
    from filmcolor import pipeline

    srt = tmp_path / "commentary.srt"
    srt.write_text("1\n00:00:00,100 --> 00:00:00,400\nHello\n\n")
    coloured = []
    real = pipeline._colorize_video
    monkeypatch.setattr(pipeline, "_colorize_video", lambda *a, **k: coloured.append(1) or real(*a, **k))
    for extra in ((), ("--segments", "2")):
        r = run(clip, "--add-track", srt, "-o", tmp_path / "out.ts", "--model", model_path, *extra)
        assert r.exit_code == 2 and " ".join(r.stderr.split()) == (
            f"filmcolor: {tmp_path / 'out.ts'}: .ts cannot hold the subtitles of {srt} (stream 0 (srt)); "
            "a .mkv holds them")
    assert not coloured and not (tmp_path / "out.ts").exists()
    film = tmp_path / "reel.mp4"
    film.write_bytes(clip.read_bytes())
    (tmp_path / "reel.srt").write_text(srt.read_text())
    r = run(film, "-o", tmp_path / "reel.ts", "--model", model_path, "--set", "render_size=48")
    assert r.exit_code == 0 and "reel.srt: subtitle stream 0 (srt) cannot go into mpegts; dropped" in " ".join(
        r.stderr.split())


def test_a_long_reel_name_is_coloured_and_one_too_long_for_its_output_is_refused_up_front(tmp_path, clip, model_path):
    # a 235-byte name: its output fits the file system's 255 bytes, but the hidden temporary name beside it
    # did not ("cannot write: File name too long", exit 3); a 250-byte one cannot take ".color" at all, and
    # asking whether that output existed raised ("unexpected error")
    fits = tmp_path / ("r" * 231 + ".mp4")
    fits.write_bytes(clip.read_bytes())
    r = run(fits, "--model", model_path, "--set", "render_size=48", "-q")
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([fits.name, "r" * 231 + ".color.mp4"])
    too_long = tmp_path / ("s" * 246 + ".mp4")
    too_long.write_bytes(clip.read_bytes())
    dst = tmp_path / ("s" * 246 + ".color.mp4")
    r = run(too_long, "--model", model_path, "-q")
    assert r.exit_code == 2 and " ".join(r.stderr.split()) == (
        f"filmcolor: {dst}: its name is 256 bytes, more than the 255 its file system allows; give a shorter one "
        "with -o (or rename the input)")
    r = CliRunner().invoke(main, ["info", str(too_long)])
    assert r.exit_code == 0 and "more than the 255 its file system allows" in " ".join(r.output.split())
    parts = tmp_path / ("p" * 231 + ".mkv")  # its parts' folder ".<output name>.segwork-<key>" was too long too
    parts.write_bytes(synth.make_clip(tmp_path / "gop.mkv", frames=48, keyint=12, color=False).read_bytes())
    r = run(parts, "--model", model_path, "--set", "render_size=48", "--segments", "2", "-q")
    assert r.exit_code == 0, r.output
    assert (tmp_path / ("p" * 231 + ".color.mkv")).is_file() and not list(tmp_path.glob(".*"))
    r = run(too_long, "--frames-as", "png", "-o", tmp_path / "pictures", "--model", model_path, "-q")
    assert r.exit_code == 2 and " ".join(r.stderr.split()) == (  # the pictures are named after the input
        f"filmcolor: {tmp_path / 'pictures'}: its pictures would be named {'s' * 246}.0000001.png, 258 bytes, "
        "more than the 255 its file system allows; rename the input")


def test_an_existing_folder_as_output_takes_the_output_under_its_default_name(tmp_path, clip, model_path):
    # "-o coloured/" was refused: "is a directory; give a file name with -o", though several inputs go there
    folder = tmp_path / "coloured"
    folder.mkdir()
    photo = tmp_path / "photo.png"
    photo.write_bytes(_png_bytes())
    for src, name in ((clip, f"{clip.stem}.color{clip.suffix}"), (photo, "photo.color.png")):
        r = run(src, "-o", folder, "--model", model_path, "--set", "render_size=48", "-q")
        assert r.exit_code == 0, r.output
        assert (folder / name).is_file()
    r = run(clip, "-o", folder, "--preview", "2", "--model", model_path, "--set", "render_size=48", "-q")
    assert r.exit_code == 0 and (folder / f"{clip.stem}.preview.png").is_file()
    assert sorted(p.name for p in folder.iterdir()) == sorted([f"{clip.stem}.color{clip.suffix}", "photo.color.png",
                                                               f"{clip.stem}.preview.png"])


def _png_bytes() -> bytes:
    import cv2

    ok, data = cv2.imencode(".png", synth.synthetic_frame(0, 64, 48, color=False))
    return data.tobytes()


def test_several_inputs_each_get_their_output_and_one_failure_does_not_stop_the_rest(tmp_path, clip, model_path,
                                                                                     monkeypatch):
    from filmcolor.inference import Colorizer

    loads = []
    real = Colorizer.from_config.__func__
    monkeypatch.setattr(Colorizer, "from_config", classmethod(lambda cls, c: loads.append(c) or real(cls, c)))
    films = tmp_path / "in"
    films.mkdir()
    reel = films / "reel.mp4"
    reel.write_bytes(clip.read_bytes())
    broken = films / "broken.mp4"
    broken.write_bytes(b"not a film" * 50)
    photo = synth.make_photo(films / "photo.jpg", grey=True)
    common = ["--model", model_path, "--set", "render_size=48"]
    r = run(reel, broken, photo, *common)
    assert r.exit_code == 1, r.output
    said = " ".join(r.stderr.split())
    assert f"filmcolor: {broken}: " in said and "2 of 3 inputs coloured; 1 failed: " + str(broken) in said
    assert listing(films) == {"reel.mp4", "broken.mp4", "photo.jpg", "reel.color.mp4", "photo.color.png"}
    assert len(loads) == 1  # one network for every input
    out = tmp_path / "out"
    out.mkdir()
    r = run(reel, photo, "-o", out, *common)
    assert r.exit_code == 0, r.output
    assert listing(out) == {"reel.color.mp4", "photo.color.png"}
    r = run(reel, photo, "-o", out, "--preview", "1", *common)
    assert r.exit_code == 0 and {"reel.preview.png", "photo.preview.png"} <= listing(out)
    r = run(reel, photo, "-o", out, *common)  # the outputs exist: a usage error for each, exit 2
    assert r.exit_code == 2 and "0 of 2 inputs coloured" in " ".join(r.stderr.split())
    other = tmp_path / "other"
    other.mkdir()
    (other / "reel.mp4").write_bytes(clip.read_bytes())
    (tmp_path / "out2").mkdir()
    r = run(reel, other / "reel.mp4", reel, "-o", tmp_path / "out2", "--overwrite", *common)
    said = " ".join(r.stderr.split())
    assert r.exit_code == 2 and "1 of 3 inputs coloured" in said, said  # never one output written twice
    assert f"{tmp_path / 'out2' / 'reel.color.mp4'}: is also the output of {reel}" in said
    import errno

    from filmcolor import media

    def full(self, frame):
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as m:  # a full disk: the next inputs would fail alike, so none is started
        m.setattr(media.VideoWriter, "write", full)
        (tmp_path / "out3").mkdir()
        r = run(reel, other / "reel.mp4", photo, "-o", tmp_path / "out3", *common)
    said = " ".join(r.stderr.split())
    assert r.exit_code == 3 and "stopped: no room left to write; 2 input(s) not started" in said
    assert "0 of 3 inputs coloured; 1 failed" in said
    r = run(reel, photo, "--model", "no-such-model", "--overwrite")  # said once, not once per input
    assert r.exit_code == 2 and len(r.stderr.strip().splitlines()) == 1 and "no-such-model" in r.stderr
    for args, cause in [(["-o", out / "x.mp4"], "-o names the folder their outputs go into"),
                        (["--add-track", clip], "--add-track adds a track to one film")]:
        r = run(reel, photo, *args, *common)
        assert r.exit_code == 2 and cause in " ".join(r.stderr.split()), r.stderr


def test_still_photo(tmp_path, model_path):
    src = synth.make_photo(tmp_path / "photo.jpg", grey=True)
    r = run(src, "--model", model_path, "--set", "render_size=48")
    assert r.exit_code == 0, r.output
    assert (tmp_path / "photo.color.png").is_file()


def test_saturation_scales_the_colour_and_zero_is_black_and_white(tmp_path, model_path):
    import cv2

    src = synth.make_photo(tmp_path / "photo.jpg", grey=True)
    chroma = {}
    for sat in ("0", "1", "2"):
        out = tmp_path / f"s{sat}.png"
        r = run(src, "--model", model_path, "--set", "render_size=48", "--saturation", sat, "-o", out)
        assert r.exit_code == 0, r.output
        lab = cv2.cvtColor(cv2.imread(str(out)), cv2.COLOR_BGR2LAB).astype(np.float32)
        chroma[sat] = float(np.hypot(lab[..., 1] - 128, lab[..., 2] - 128).mean())
    assert chroma["0"] < 0.5                          # a/b x 0: the photo stays grey
    assert chroma["1"] > 1.0                          # the tiny model does colour it
    assert chroma["2"] > 1.5 * chroma["1"]            # and twice the a/b is clearly more colourful
    r = run(src, "--model", model_path, "--saturation", "3.5", "-o", tmp_path / "x.png")
    assert r.exit_code == 2 and "--saturation" in r.stderr


def _audio_only(path: Path) -> Path:
    with av.open(str(path), "w") as out:
        a = out.add_stream("aac", rate=48000)
        a.layout, a.format = "stereo", "fltp"
        for i in range(20):
            frame = av.AudioFrame.from_ndarray(np.zeros((2, 1024), np.float32), format="fltp", layout="stereo")
            frame.sample_rate, frame.pts, frame.time_base = 48000, i * 1024, Fraction(1, 48000)
            out.mux(a.encode(frame))
        out.mux(a.encode(None))
    return path


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _folder(path: Path) -> Path:
    path.mkdir()
    return path


def _truncated(path: Path, clip: Path) -> Path:
    data = clip.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


BAD = {
    "missing.mp4": (lambda d, clip: d / "missing.mp4", "no such file"),
    "folder.mp4": (lambda d, clip: _folder(d / "folder.mp4"), "directory"),
    "empty.mp4": (lambda d, clip: _write(d / "empty.mp4", b""), "empty"),
    "text.mp4": (lambda d, clip: _write(d / "text.mp4", b"just some text\n" * 100), "not a media file"),
    "truncated.mp4": (lambda d, clip: _truncated(d / "truncated.mp4", clip), "truncated"),
    "sound.m4a": (lambda d, clip: _audio_only(d / "sound.m4a"), "no video"),
}


@pytest.mark.parametrize("name", list(BAD))
def test_bad_input_one_line_exit_1_nothing_written(tmp_path, clip, model_path, name):
    make, cause = BAD[name]
    src = make(tmp_path, clip)
    before = listing(tmp_path)
    digest = sha256(src) if src.is_file() else None
    r = run(src, "--model", model_path)
    assert r.exit_code == 1, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("filmcolor: ") and name in lines[0] and cause in lines[0]
    assert "Traceback" not in r.output
    assert listing(tmp_path) == before  # no output, no temp file
    if digest is not None:
        assert sha256(src) == digest


def test_traceback_flag_shows_the_chain(tmp_path):
    r = run(tmp_path / "text.mp4", "--traceback")
    assert r.exit_code == 1 and "Traceback" in r.stderr and "no such file" in r.stderr


def test_unknown_model_is_usage_error(tmp_path, clip):
    r = run(clip, "--model", "no-such-model", "-o", tmp_path / "x.mp4")
    assert r.exit_code == 2 and "unknown model 'no-such-model'" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    r = run(clip, "--genre", "western", "-o", tmp_path / "x.mp4")
    assert r.exit_code == 2 and "western" in r.stderr
    assert listing(tmp_path) == set()


def test_usage_errors_exit_2(tmp_path, clip, model_path):
    assert run(clip, "--model", model_path, "--genre", "noir").exit_code == 2
    assert run(clip, "--preset", "nope").exit_code == 2
    assert run(clip, "--smooth", "wobbly").exit_code == 2
    assert run(clip, "--start", "soon").exit_code == 2
    r = run(clip, "--duration", "0", "-o", tmp_path / "x.mp4")
    assert r.exit_code == 2 and "must be > 0" in r.stderr
    r = run(clip, "-o", clip, "--model", model_path, "--overwrite")
    assert r.exit_code == 2 and "input" in r.stderr


@pytest.mark.parametrize("name,extra,cause", [
    ("out.webm", (), "a .webm file cannot hold h264 video; use .mkv or .mp4 or .mov or .avi"),
    ("out.xyz", (), ".xyz is not a film container filmcolor writes"),
    ("out.png", (), ".png is not a film container filmcolor writes"),
    ("out.mp4", ("--codec", "prores"), "a .mp4 file cannot hold prores video; use .mkv or .mov"),
])
def test_an_output_that_cannot_hold_the_film_is_refused_before_colouring(tmp_path, clip, model_path, name,
                                                                        extra, cause):
    # before: "unexpected error: ValueError: 'webm' format does not support 'libx264' codec"
    r = run(clip, "-o", tmp_path / name, "--model", model_path, *extra)
    assert r.exit_code == 2 and listing(tmp_path) == set()
    assert r.stderr.strip().startswith(f"filmcolor: {tmp_path / name}: {cause}")


def test_the_default_output_is_a_container_that_holds_the_codec(tmp_path, clip, model_path):
    # ProRes cannot go into MP4: `run reel.mp4 --codec prores` failed; its default output is now .mkv
    src = tmp_path / "reel.mp4"
    src.write_bytes(clip.read_bytes())
    r = run(src, "--model", model_path, "--set", "render_size=48", "--codec", "prores")
    assert r.exit_code == 0, r.output
    assert listing(tmp_path) == {"reel.mp4", "reel.color.mkv"}
    with av.open(str(tmp_path / "reel.color.mkv")) as c:
        assert c.streams.video[0].codec_context.name == "prores"


@pytest.mark.parametrize("preview", [(), ("--preview", "3")])
def test_a_photo_or_preview_to_a_film_extension_is_refused(tmp_path, clip, model_path, preview):
    src = clip if preview else synth.make_photo(tmp_path / "p.png")
    r = run(src, "-o", tmp_path / "p.mp4", "--model", model_path, *preview)
    assert r.exit_code == 2 and not (tmp_path / "p.mp4").exists()
    assert r.stderr.strip() == f"filmcolor: {tmp_path / 'p.mp4'}: .mp4 is not a photo format filmcolor writes " \
                               "(.png, .jpg, .tif, .webp, .bmp, .jp2)"


def test_start_and_duration_as_the_films_own_timecode(tmp_path, model_path):
    # restorers log shots by timecode: 10:00:01:05 on a reel that starts at 10:00:00:00 is 1 s + 5 frames in
    src = tmp_path / "reel.mov"
    with av.open(str(src), "w") as out:
        vs = out.add_stream("libx264", rate=25)
        vs.width, vs.height, vs.pix_fmt = 64, 48, "yuv420p"
        vs.metadata["timecode"] = "10:00:00:00"
        write_grey_frames(out, vs, 75)
    dst = tmp_path / "shot.mov"
    r = run(src, "-o", dst, "--model", model_path, "--set", "render_size=48", "--start", "10:00:01:05",
            "--duration", "00:00:00:10")
    assert r.exit_code == 0, r.output
    with av.open(str(dst)) as c:
        assert c.streams.video[0].metadata["timecode"] == "10:00:01:05"  # the shot's own first frame
        assert sum(1 for _ in c.decode(video=0)) == 10
    r = run(src, "-o", tmp_path / "x.mov", "--model", model_path, "--start", "09:59:00:00")
    assert r.exit_code == 1 and "comes before the film's first frame (10:00:00:00)" in r.stderr
    r = run(src, "-o", tmp_path / "x.mov", "--model", model_path, "--start", "10:00:01:30")
    assert r.exit_code == 1 and "not a timecode at 25 fps" in r.stderr
    assert not (tmp_path / "x.mov").exists()


def test_a_start_past_the_end_names_the_films_length(tmp_path, clip, model_path):
    r = run(clip, "--start", "1:00", "--model", model_path, "-o", tmp_path / "x.mp4")  # a 0.48 s clip
    assert r.exit_code == 1 and listing(tmp_path) == set()
    assert r.stderr.strip() == f"filmcolor: {clip}: --start 60 s is past the end of the film (0.48 s)"


def test_interrupt_exits_130(tmp_path, clip, model_path, monkeypatch):
    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "colorize_file", interrupted)
    r = run(clip, "--model", model_path, "-o", tmp_path / "x.mp4")
    assert r.exit_code == 130 and "interrupted" in r.stderr


def test_unexpected_error_is_one_line(tmp_path, clip, model_path, monkeypatch):
    def broken(*a, **k):
        raise RuntimeError("kaboom")

    monkeypatch.setattr(pipeline, "colorize_file", broken)
    r = run(clip, "--model", model_path, "-o", tmp_path / "x.mp4")
    assert r.exit_code == 1 and "kaboom" in r.stderr and "--traceback" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_gpu_is_usage_error(tmp_path, clip, model_path):
    r = run(clip, "--model", model_path, "--device", "cuda", "-o", tmp_path / "x.mp4")
    assert r.exit_code == 2 and "cuda" in r.stderr.lower()
    assert listing(tmp_path) == set()
