"""Folder jobs: isolation of a broken reel, the manifest, resume, SIGKILL, Ctrl-C and the Ray path.

Films are tiny synthetic clips and the model a random ngf=4 U-Net, so every run takes about a second.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import torch

from filmcolor import batch as batch_mod
from filmcolor import synth, weights
from filmcolor.batch import MANIFEST_NAME, batch, fingerprint, is_stale_temp, read_manifest, settings_hash
from filmcolor.config import RunConfig
from filmcolor.model import UNetGenerator

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "tiny.safetensors"
    return weights.save_generator(UNetGenerator(ngf=4, num_downs=5), path, "unet", {"ngf": 4, "num_downs": 5})


def _config(model: Path, **kw) -> RunConfig:
    return RunConfig(model=str(model), device="cpu", render_size=64, **kw)


def _reels(root: Path, frames: int = 12) -> Path:
    """Two good reels (one in a subfolder), a photo, a truncated reel and a text file."""
    src = root / "reels"
    (src / "sub").mkdir(parents=True)
    synth.make_clip(src / "a.mp4", frames=frames, color=False)
    synth.make_clip(src / "sub" / "b.mp4", frames=frames, color=False, audio=())
    synth.make_photo(src / "photo.png")
    good = synth.make_clip(root / "whole.mp4", frames=frames)
    data = good.read_bytes()
    (src / "broken.mp4").write_bytes(data[: len(data) // 2])
    (src / "notes.txt").write_text("not a film\n")
    return src


def _decoded_frames(path: Path) -> int:
    import av

    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


def _hidden_temps(out: Path) -> list[Path]:
    return [p for p in out.rglob(".*") if p.name != ".filmcolor-batch.lock"]


def test_broken_reel_isolated_manifest_and_rerun_redoes_nothing(tmp_path, tiny_model):
    src, out = _reels(tmp_path), tmp_path / "out"
    cfg = _config(tiny_model)
    seen = []
    rep = batch(src, out, cfg, report=tmp_path / "report.json", progress=lambda r, d, t: seen.append((r.rel, d, t)))

    assert rep.exit_code == 1
    status = {r.rel: r.status for r in rep.results}
    assert status == {"a.mp4": "ok", "broken.mp4": "failed", "photo.png": "ok", "sub/b.mp4": "ok"}
    assert rep.ignored == ["notes.txt"]
    (broken,) = rep.failed
    assert "truncated" in broken.error
    assert [d for _, d, _ in seen] == [1, 2, 3, 4] and {t for _, _, t in seen} == {4}
    # every good reel coloured, tree mirrored, nothing half-written left
    assert _decoded_frames(out / "a.color.mp4") == 12
    assert _decoded_frames(out / "sub" / "b.color.mp4") == 12
    assert (out / "photo.color.png").is_file()
    assert not (out / "broken.color.mp4").exists()
    assert _hidden_temps(out) == []
    # manifest: one line per reel with fingerprint, hashes, status, frames, error, output
    lines = (out / MANIFEST_NAME).read_text().splitlines()
    assert len(lines) == 4
    m = {e["input"]: e for e in map(json.loads, lines)}
    assert m["a.mp4"]["status"] == "ok" and m["a.mp4"]["frames"] == 12 and m["a.mp4"]["error"] is None
    assert m["a.mp4"]["output"] == "a.color.mp4" and m["sub/b.mp4"]["output"] == "sub/b.color.mp4"
    assert m["a.mp4"]["fingerprint"] == fingerprint(src / "a.mp4")
    assert m["a.mp4"]["settings"] == settings_hash(cfg)
    assert m["a.mp4"]["model"] == weights.file_sha256(tiny_model)
    assert m["broken.mp4"]["status"] == "failed" and "truncated" in m["broken.mp4"]["error"]
    assert m["photo.png"]["frames"] == 1
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["exit_code"] == 1 and report["counts"] == {"ok": 3, "failed": 1, "skipped": 0, "todo": 0,
                                                            "ignored": 1}

    # a re-run redoes nothing that finished (only the failed reel is tried again)
    mtimes = {p: p.stat().st_mtime_ns for p in out.rglob("*.color.*")}
    rep2 = batch(src, out, cfg)
    assert {r.rel: r.status for r in rep2.results} == {"a.mp4": "skipped", "broken.mp4": "failed",
                                                      "photo.png": "skipped", "sub/b.mp4": "skipped"}
    assert rep2.exit_code == 1
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.color.*")} == mtimes
    m2 = read_manifest(out / MANIFEST_NAME)
    assert m2["a.mp4"]["finished"] == m["a.mp4"]["finished"]

    # a changed input, a changed setting, force: exactly what must be redone is redone
    synth.make_clip(src / "a.mp4", frames=10, color=False)
    rep3 = batch(src, out, cfg)
    assert [r.rel for r in rep3.done] == ["a.mp4"] and read_manifest(out / MANIFEST_NAME)["a.mp4"]["frames"] == 10
    rep4 = batch(src, out, cfg.with_overrides(overwrite=True, threads=1))  # no effect on pixels: still skipped
    assert rep4.done == []
    rep5 = batch(src, out, cfg.with_overrides(crf=30))
    assert sorted(r.rel for r in rep5.done) == ["a.mp4", "photo.png", "sub/b.mp4"]
    rep6 = batch(src, out, cfg.with_overrides(crf=30), force=True)
    assert sorted(r.rel for r in rep6.done) == ["a.mp4", "photo.png", "sub/b.mp4"]


def test_inputs_that_would_share_an_output_name_each_keep_their_own(tmp_path, tiny_model):
    # scan.jpg, scan.tif and scan.png all colour to a PNG; reel.mpg's MPEG-PS output is Matroska, like
    # reel.mkv's. Before, the batch reported all five "ok" and left two files: each overwrote another.
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    for name, seed in (("scan.jpg", 1), ("scan.tif", 2), ("scan.png", 3)):
        synth.make_photo(src / name, width=40 + 8 * seed, height=32)
    synth.make_clip(src / "reel.mkv", frames=12, color=False)
    synth.make_clip(src / "reel.mpg", frames=9, color=False, codec="mpeg2video", audio=())
    rep = batch(src, out, _config(tiny_model))
    assert rep.exit_code == 0
    outputs = {r.rel: r.dst.relative_to(out).as_posix() for r in rep.results}
    assert outputs == {"scan.png": "scan.color.png", "scan.jpg": "scan.jpg.color.png",
                       "scan.tif": "scan.tif.color.png", "reel.mkv": "reel.color.mkv",
                       "reel.mpg": "reel.mpg.color.mkv"}
    assert sorted(p.name for p in out.glob("*.color.*")) == sorted(p.split("/")[-1] for p in outputs.values())
    assert _decoded_frames(out / "reel.color.mkv") == 12 and _decoded_frames(out / "reel.mpg.color.mkv") == 9
    widths = {cv2.imread(str(out / o)).shape[1] for o in outputs.values() if o.endswith(".png")}
    assert widths == {48, 56, 64}  # three different photos, three outputs
    assert {r.status for r in batch(src, out, _config(tiny_model)).results} == {"skipped"}  # names are stable


def test_settings_hash_keeps_earlier_manifests_and_counts_a_changed_saturation():
    import dataclasses
    import hashlib

    cfg = RunConfig()
    before = {k: v for k, v in dataclasses.asdict(cfg).items()  # what the hash read before these fields existed
              if k not in {"model", "device", "batch_size", "overwrite", "threads", "saturation", "sequence_fps",
                           "frames_as", "scan_transfer", "bars"}}
    assert settings_hash(cfg) == hashlib.sha256(json.dumps(before, sort_keys=True).encode()).hexdigest()
    assert settings_hash(dataclasses.replace(cfg, saturation=1.3)) != settings_hash(cfg)
    assert settings_hash(dataclasses.replace(cfg, sequence_fps="25")) != settings_hash(cfg)
    assert settings_hash(dataclasses.replace(cfg, frames_as="dpx")) != settings_hash(cfg)
    assert settings_hash(dataclasses.replace(cfg, bars="off")) != settings_hash(cfg)


def test_ctrl_c_stops_after_the_reel_and_resumes(tmp_path, tiny_model):
    src, out = _reels(tmp_path), tmp_path / "out"
    (src / "broken.mp4").unlink()
    cfg = _config(tiny_model)

    def interrupt(result, done, total):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        batch(src, out, cfg, progress=interrupt)
    assert len(read_manifest(out / MANIFEST_NAME)) == 1
    assert _hidden_temps(out) == []
    rep = batch(src, out, cfg)
    assert rep.exit_code == 0
    assert sorted(r.status for r in rep.results) == ["ok", "ok", "skipped"]


def test_a_full_disk_stops_new_reels_and_the_same_command_goes_on(tmp_path, tiny_model, monkeypatch):
    import errno

    from click.testing import CliRunner

    from filmcolor import media
    from filmcolor.cli import main

    src, out = _reels(tmp_path), tmp_path / "out"
    (src / "broken.mp4").unlink()
    cfg = _config(tiny_model)
    real_write = media.VideoWriter.write

    def full(self, frame):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(media.VideoWriter, "write", full)
    rep = batch(src, out, cfg)  # a.mp4 comes first and finds the disk full: nothing else is started
    assert [(r.rel, r.status) for r in rep.results] == [("a.mp4", "failed"), ("photo.png", "todo"),
                                                        ("sub/b.mp4", "todo")]
    assert rep.exit_code == 3 and "2 reel(s) not started" in rep.stopped and "No space left" in rep.results[0].error
    assert _hidden_temps(out) == [] and sorted(read_manifest(out / MANIFEST_NAME)) == ["a.mp4"]
    r = CliRunner().invoke(main, ["batch", str(src), "-o", str(out), "--model", str(tiny_model), "--device", "cpu",
                                  "--set", "render_size=64"])
    said = " ".join(r.stderr.split())
    assert r.exit_code == 3 and "batch stopped: no room left to write in" in said and "not started" in said
    monkeypatch.setattr(media.VideoWriter, "write", real_write)  # room again: the same call goes on
    rep = batch(src, out, cfg)
    assert rep.exit_code == 0 and sorted(r.status for r in rep.results) == ["ok", "ok", "ok"]


@pytest.mark.slow
def test_sigkill_mid_batch_then_rerun_completes(tmp_path, tiny_model):
    src, out = tmp_path / "reels", tmp_path / "out"
    src.mkdir()
    for name in ("r1", "r2", "r3"):
        synth.make_clip(src / f"{name}.mp4", frames=90, color=False)
    cfg = _config(tiny_model)
    script = textwrap.dedent(f"""
        from filmcolor.batch import batch
        from filmcolor.config import RunConfig
        batch({str(src)!r}, {str(out)!r}, RunConfig(model={str(tiny_model)!r}, device="cpu", render_size=64))
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT)
    manifest = out / MANIFEST_NAME
    saw_part = False
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if manifest.is_file() and len(read_manifest(manifest)) >= 1:
                saw_part = any(".part" in p.name for p in out.glob(".*"))
                if saw_part:
                    break
            time.sleep(0.02)
        assert proc.poll() is None, "the batch finished before it could be killed; make the reels longer"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    done_before = {k for k, e in read_manifest(manifest).items() if e["status"] == "ok"}
    assert 1 <= len(done_before) < 3
    # the reel in progress left no visible output, only a hidden temp file
    assert {p.name for p in out.glob("*.color.mp4")} == {f"{Path(k).stem}.color.mp4" for k in done_before}
    assert saw_part

    rep = batch(src, out, cfg)
    assert rep.exit_code == 0
    assert {r.rel for r in rep.skipped} == done_before  # finished reels are not redone
    assert {r.rel for r in rep.done} == {"r1.mp4", "r2.mp4", "r3.mp4"} - done_before
    for name in ("r1", "r2", "r3"):
        assert _decoded_frames(out / f"{name}.color.mp4") == 90
    assert _hidden_temps(out) == []


def test_stale_temp_names():
    outs = ["reel.color.mp4"]
    assert is_stale_temp(".reel.color.filmcolor-123-abcd1234.part.mp4", outs)
    assert is_stale_temp(".reel.color.mp4.segtmp99", outs)
    assert not is_stale_temp("reel.color.mp4", outs)
    assert not is_stale_temp(".other.color.filmcolor-1-ab.part.mp4", outs)
    assert not is_stale_temp(".filmcolor-batch.lock", outs)
    folders = ["reel.color"]  # --frames-as: a hidden folder being written, and the old one it replaces
    assert is_stale_temp(".reel.color.filmcolor-123-abcd1234.part", folders)
    assert is_stale_temp(".reel.color.filmcolor-123-abcd1234.old", folders)
    assert not is_stale_temp(".reel.colour.filmcolor-123-abcd1234.part", folders)
    assert not is_stale_temp(".reel.color.mp4.segwork-0123456789abcdef", outs)  # kept to resume


def test_missing_ray_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(Exception, match=r"pip install filmcolor\[ray\]"):
        batch_mod.import_ray()


@pytest.mark.ray
def test_ray_local_instance(tmp_path, tiny_model):
    ray = pytest.importorskip("ray")
    src, out = _reels(tmp_path), tmp_path / "out"
    (src / "photo.png").unlink()
    cfg = _config(tiny_model)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        rep = batch(src, out, cfg, ray_address="local")
        assert rep.exit_code == 1
        assert {r.rel: r.status for r in rep.results} == {"a.mp4": "ok", "broken.mp4": "failed", "sub/b.mp4": "ok"}
        assert _decoded_frames(out / "a.color.mp4") == 12
        assert _decoded_frames(out / "sub" / "b.color.mp4") == 12
        m = read_manifest(out / MANIFEST_NAME)
        assert m["a.mp4"]["status"] == "ok" and m["broken.mp4"]["status"] == "failed"
        rep2 = batch(src, out, cfg, ray_address="local")  # same resume semantics
        assert {r.status for r in rep2.results if r.rel != "broken.mp4"} == {"skipped"}
    finally:
        ray.shutdown()


def test_cli_batch_exit_code_table_and_report(tmp_path, tiny_model):
    from click.testing import CliRunner

    from filmcolor.cli import main

    src, out = _reels(tmp_path), tmp_path / "out"
    (src / "photo.png").unlink()
    (src / "sub" / "b.mp4").unlink()
    args = ["batch", str(src), "-o", str(out), "--model", str(tiny_model), "--device", "cpu",
            "--set", "render_size=64", "--report", str(tmp_path / "r.json")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1, result.output
    assert "failed" in result.output and "broken.mp4" in result.output and "truncated" in result.output
    report = json.loads((tmp_path / "r.json").read_text())
    assert {r["input"]: r["status"] for r in report["reels"]} == {"a.mp4": "ok", "broken.mp4": "failed"}
    (src / "broken.mp4").unlink()
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 0, again.output
    assert "already done" in again.output and "no films or photos found" not in again.output
    (tmp_path / "empty").mkdir()
    empty = CliRunner().invoke(main, ["batch", str(tmp_path / "empty"), "-o", str(tmp_path / "o2"), "-q"])
    assert empty.exit_code == 0 and "no films or photos found" in empty.output  # a mistyped folder is visible


def test_names_in_square_brackets_are_shown_as_they_are(tmp_path, tiny_model):
    """Archive names like "Reel 1 [restored].mp4" or "[bold]" appear verbatim in the table and the
    progress bar, not as rich markup (which drops them, or refuses "[/x]" as an unmatched closing tag)."""
    import io

    from click.testing import CliRunner
    from rich.console import Console

    from filmcolor.cli import main, progress_bar

    src = tmp_path / "reels"
    src.mkdir()
    synth.make_clip(src / "Reel 1 [restored].mp4", frames=6, color=False, audio=())
    (src / "bad [bold].mp4").write_bytes(b"not a film" * 40)
    r = CliRunner().invoke(main, ["batch", str(src), "-o", str(tmp_path / "out"), "--model", str(tiny_model),
                                  "--device", "cpu", "--set", "render_size=64"])
    assert r.exit_code == 1, r.output
    table = " ".join(r.stdout.split()) + " ".join(r.stderr.split())
    assert "Reel 1 [restored].mp4" in table and "bad [bold].mp4" in table
    screen = io.StringIO()
    with progress_bar(Console(file=screen, force_terminal=True, width=120), "[1/2] take [/x] [bold]") as update:
        update(1, 2)
    assert "[1/2] take [/x] [bold]" in screen.getvalue()


def test_sequences_option_colours_a_folder_of_scans_as_one_film(tmp_path, tiny_model):
    src, out = tmp_path / "in", tmp_path / "out"
    scans = src / "scans" / "reel1"
    scans.mkdir(parents=True)
    for n in range(1000, 1010):
        synth.make_photo(scans / f"reel1_{n:05d}.png", width=64, height=48)
    synth.make_photo(scans / "slate.png", width=64, height=48)  # not a frame: a photo as before
    (scans / "reel1.wav").write_bytes(_wav_bytes(0.4))  # the reel's sound, delivered beside the scans
    synth.make_clip(src / "film.mp4", frames=6, color=False)
    cfg = _config(tiny_model).with_overrides(sequence_fps="25")
    plain = batch(src, tmp_path / "plain", cfg)  # without the option every frame is a photo
    assert sum(r.kind == "still" for r in plain.results) == 11
    rep = batch(src, out, cfg, sequences=True, segments=2)  # a sequence is not cut into segments
    assert rep.exit_code == 0
    assert {r.rel: (r.kind, r.frames) for r in rep.results} == {
        "film.mp4": ("video", 6), "scans/reel1": ("sequence", 10), "scans/reel1/slate.png": ("still", 1)}
    assert "scans/reel1/reel1.wav" in plain.ignored and rep.ignored == []  # part of the reel, not left out
    with av.open(str(out / "scans" / "reel1.color.mkv")) as c:
        assert [s.codec_context.name for s in c.streams.audio] == ["pcm_s16le"]
        assert c.streams.video[0].average_rate == 25 and sum(1 for _ in c.decode(video=0)) == 10
    assert {r.status for r in batch(src, out, cfg, sequences=True).results} == {"skipped"}
    synth.make_photo(scans / "reel1_01010.png", width=64, height=48)  # a frame added: the reel is redone
    again = batch(src, out, cfg, sequences=True)
    assert [r.rel for r in again.done] == ["scans/reel1"] and again.done[0].frames == 11
    (scans / "reel1_01004.png").unlink()  # a gap: that reel fails with the frame named, the rest go on
    gap = batch(src, out, cfg, sequences=True, force=True)
    (failed,) = gap.failed
    assert failed.rel == "scans/reel1" and "frame 1004 missing" in failed.error
    assert len(gap.done) == 2


def test_frames_as_writes_each_film_and_scanned_reel_as_a_folder_of_pictures(tmp_path, tiny_model):
    src, out = tmp_path / "in", tmp_path / "out"
    scans = src / "reel1"
    scans.mkdir(parents=True)
    for n in range(1, 6):
        synth.make_photo(scans / f"reel1_{n:04d}.png", width=64, height=48)
    synth.make_clip(src / "film.mp4", frames=6, color=False)
    synth.make_clip(src / "film.mkv", frames=4, color=False, audio=())  # same name, another container
    synth.make_photo(src / "photo.jpg", width=64, height=48)
    cfg = _config(tiny_model).with_overrides(frames_as="tiff")
    rep = batch(src, out, cfg, sequences=True)
    assert rep.exit_code == 0, [r.error for r in rep.failed]
    assert {r.rel: (r.dst.name, r.frames) for r in rep.results} == {
        "film.mkv": ("film.mkv.color", 4), "film.mp4": ("film.mp4.color", 6), "reel1": ("reel1.color", 5),
        "photo.jpg": ("photo.color.png", 1)}  # a photo stays a photo
    assert sorted(p.name for p in (out / "film.mp4.color").iterdir()) == \
        [f"film.{n:07d}.tif" for n in range(1, 7)] + ["film.mka"]  # its sound beside the pictures
    assert sorted(p.name for p in (out / "reel1.color").iterdir()) == [f"reel1_{n:04d}.tif" for n in range(1, 6)]
    assert {r.status for r in batch(src, out, cfg, sequences=True).results} == {"skipped"}
    assert {r.status for r in batch(src, out, _config(tiny_model), sequences=True).results} == {"ok"}  # as films
    with pytest.raises(ValueError, match="not cut into segments"):
        batch(src, out, cfg, segments=2)


def _wav_bytes(seconds: float, rate: int = 8000) -> bytes:
    import io
    import wave

    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.zeros(int(seconds * rate), "<i2").tobytes())
    return buf.getvalue()


def test_dry_run_lists_what_a_run_would_do_and_why_without_touching_anything(tmp_path, tiny_model):
    import dataclasses

    from click.testing import CliRunner

    from filmcolor.cli import main

    src, out = _reels(tmp_path), tmp_path / "out"
    (src / "broken.mp4").unlink()
    cfg = _config(tiny_model)
    first = batch(src, out, cfg, dry_run=True)
    assert not out.exists()  # nothing written, not even the output folder
    assert {r.rel: (r.status, r.reason) for r in first.results} == {
        "a.mp4": ("todo", "new"), "sub/b.mp4": ("todo", "new"), "photo.png": ("todo", "new")}
    batch(src, out, cfg)
    synth.make_clip(src / "a.mp4", frames=14, color=False)  # the reel was replaced by a new transfer
    (out / "photo.color.png").unlink()
    stale = out / "sub" / ".b.color.filmcolor-1-ab.part.mp4"
    stale.write_bytes(b"half")
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    second = batch(src, out, cfg, dry_run=True)
    assert {r.rel: (r.status, r.reason) for r in second.results} == {
        "a.mp4": ("todo", "input changed"), "sub/b.mp4": ("skipped", None), "photo.png": ("todo", "output missing")}
    assert {r.rel: r.reason for r in batch(src, out, dataclasses.replace(cfg, saturation=1.2), dry_run=True).results
            } == {"a.mp4": "input changed", "sub/b.mp4": "settings changed", "photo.png": "output missing"}
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == before and stale.exists()  # nothing touched
    args = ["batch", str(src), "-o", str(out), "--model", str(tiny_model), "--device", "cpu", "--set", "render_size=64",
            "--dry-run"]
    r = CliRunner().invoke(main, args, env={"COLUMNS": "200"})
    text = " ".join(r.output.split())
    assert r.exit_code == 0 and "dry run: 2 to colour, 1 already done" in text and "input changed" in text
    assert os.path.exists(stale)


def test_the_cli_prints_what_each_reel_s_run_said(tmp_path, tiny_model):
    from click.testing import CliRunner

    from filmcolor.cli import main

    src = tmp_path / "reels"
    src.mkdir()
    synth.make_clip(src / "colour.mp4", frames=6, color=True, audio=())
    synth.make_clip(src / "bw.mp4", frames=6, color=False, audio=())
    r = CliRunner().invoke(main, ["batch", str(src), "-o", str(tmp_path / "out"), "--model", str(tiny_model),
                                  "--device", "cpu", "--set", "render_size=64", "-q"])
    text = " ".join(r.stderr.split())
    assert r.exit_code == 0 and f"warning: {src / 'colour.mp4'}: the film is in colour already" in text
    assert "bw.mp4" not in text


def test_segments_of_a_reel_no_longer_in_the_batch_are_removed(tmp_path, tiny_model):
    src, out = tmp_path / "reels", tmp_path / "out"
    src.mkdir()
    synth.make_clip(src / "kept.mp4", frames=6, color=False, audio=())
    orphan = out / "sub" / ".gone.color.mp4.segwork-0123abcd"  # a feature whose input was since removed
    orphan.mkdir(parents=True)
    (orphan / "col0000.nut").write_bytes(b"ffv1 segment")
    own = out / ".kept.color.mp4.segwork-89ab"  # a reel still in the batch: its run decides
    own.mkdir()
    synth.make_clip(src / ("k" * 200 + ".mp4"), frames=6, color=False, audio=())  # its folder's name is cut
    long_own = out / f".{'k' * 100}.segwork-cdef"
    long_own.mkdir()
    said: list[str] = []
    batch(src, out, _config(tiny_model), dry_run=True, warn=said.append)
    assert long_own.is_dir()
    assert orphan.is_dir() and said == [f"{orphan}: coloured segments of a reel no longer in {src}; a run removes them"]
    said.clear()
    batch(src, out, _config(tiny_model), warn=said.append)
    assert not orphan.exists() and said == [f"{orphan}: removed the coloured segments of a reel no longer in {src}"]
