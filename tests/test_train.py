"""Training loop, resume, fine-tuning and DDP on tiny networks and tiny synthetic data (CPU)."""

from __future__ import annotations

import json
import socket
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from filmcolor import weights
from filmcolor.errors import ModelError
from filmcolor.synth import make_clip, synthetic_frame
from filmcolor.train import TrainConfig, data_threads, finetune, learning_rate, train

TINY = dict(ngf=4, num_downs=5, ndf=8, crop=64, batch_size=2, max_side=96, val_max_side=96, val_images=2,
            film_frames=6, threads=1, device="cpu", cache="", grid_images=2)


@pytest.fixture()
def photos(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    for i in range(4):
        rgb = synthetic_frame(5 * i, 96, 80)
        rgb = np.clip(rgb.astype(int) + rng.integers(-20, 20, (1, 1, 3)), 0, 255).astype(np.uint8)
        cv2.imwrite(str(folder / f"p{i}.png"), rgb[..., ::-1])
    return folder


@pytest.fixture()
def films(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("films")
    return [make_clip(folder / f"film{i}.mp4", frames=12, width=96, height=64, audio=()) for i in range(2)]


def _cfg(tmp_path: Path, photos: Path, **kw) -> TrainConfig:
    base = dict(data=(str(photos),), val=(str(photos),), out=str(tmp_path / "run"), steps=1, warmup_steps=1,
                checkpoint_every=1, val_every=1)
    return TrainConfig(**{**base, **TINY, **kw})


def test_one_step_train_saves_a_model_that_colours(tmp_path, photos, films):
    cfg = _cfg(tmp_path, photos, data=(str(photos), str(films[0])))
    path = train(cfg, log=lambda s: None)
    run = Path(cfg.out)
    assert path == run / "default.safetensors"
    assert not (run / "default-l1.safetensors").exists()  # no adversarial phase: no separate L1 model
    for name in ("checkpoint.pt", "metrics.csv", "grid_0000001.png", "loss.png"):
        assert (run / name).is_file(), name
    ck = torch.load(run / "checkpoint.pt", weights_only=True)
    assert {"gen", "disc", "ema", "opt_g", "opt_d", "step", "wall", "history", "config", "rng", "torch_rng"} <= set(ck)
    assert ck["step"] == 1 and json.loads(ck["config"])["ngf"] == 4
    header, row = (run / "metrics.csv").read_text().splitlines()[:2]
    assert {"psnr", "ssim", "ciede2000", "colourfulness", "grey_psnr", "grey_ciede2000", "l1"} <= set(header.split(","))
    assert cv2.imread(str(run / "grid_0000001.png")).shape[0] == 2 * (128 + 4)  # two rows
    model, info = weights.load_generator(path)
    assert info.card["steps"] == 1 and info.card["images"] == 4 + 6 and "psnr" in info.card["validation"]
    L = torch.linspace(-1, 1, 64 * 96).view(1, 1, 64, 96)
    with torch.no_grad():
        ab = model(L)
    assert ab.shape == (1, 2, 64, 96) and float(ab.std()) > 1e-4


def test_resume_continues_step_count_and_reproduces_next_loss(tmp_path, photos):
    cfg = _cfg(tmp_path, photos, steps=3, val=(), prefetch=2)
    straight: dict[int, dict[str, float]] = {}
    train(replace(cfg, out=str(tmp_path / "a")), log=lambda s: None, on_step=lambda s, l: straight.setdefault(s, l))
    train(replace(cfg, out=str(tmp_path / "b"), steps=2), log=lambda s: None)
    lines: list[str] = []
    train(replace(cfg, out=str(tmp_path / "empty"), steps=1), resume=True, log=lines.append)
    assert f"warning: nothing to resume: no {tmp_path / 'empty' / 'checkpoint.pt'}; starting at step 0" in lines
    resumed: dict[int, dict[str, float]] = {}
    train(replace(cfg, out=str(tmp_path / "b")), resume=True, log=lambda s: None,
          on_step=lambda s, l: resumed.setdefault(s, l))
    assert list(resumed) == [3]
    assert set(resumed[3]) == {"l1", "d", "g_gan"}  # adversarial phase: both nets and soft labels involved
    for k, v in straight[3].items():
        assert resumed[3][k] == pytest.approx(v, rel=1e-6, abs=1e-7), k
    assert torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)["step"] == 3
    l1_model = tmp_path / "a" / "default-l1.safetensors"  # the generator at the end of the L1 warm-up (step 1)
    assert weights.load_generator(l1_model)[1].card["steps"] == 1


def test_time_limit_stops_and_saves_like_a_last_step(tmp_path, photos):
    cfg = _cfg(tmp_path, photos, steps=500, warmup_steps=250, checkpoint_every=1000, val_every=1000,
               max_minutes=1e-9)  # up after the first step
    seen: list[int] = []
    path = train(cfg, log=lambda s: None, on_step=lambda s, l: seen.append(s))
    assert seen == [1]
    card = weights.load_generator(path)[1].card
    assert card["steps"] == 1 and card["planned_steps"] == 500 and "time limit" in card["stopped"]
    assert "l1" in card["validation"]  # validated at the stop although no val_every step was reached
    assert torch.load(Path(cfg.out) / "checkpoint.pt", weights_only=True)["step"] == 1
    with pytest.raises(ValueError, match="max_minutes"):
        replace(cfg, max_minutes=-1)


def test_lr_decay_falls_linearly_over_the_last_steps_and_reaches_the_optimisers(tmp_path, photos):
    flat = _cfg(tmp_path, photos, steps=10, lr=1e-3)
    assert {learning_rate(flat, s) for s in range(10)} == {1e-3}
    cfg = replace(flat, lr_decay_steps=4)
    lrs = [learning_rate(cfg, s) for s in range(10)]
    assert lrs[:6] == [1e-3] * 6                      # constant until the last 4 steps
    assert lrs[6:] == pytest.approx([8e-4, 6e-4, 4e-4, 2e-4])  # then a straight line towards 0
    with pytest.raises(ValueError, match="lr_decay_steps"):
        replace(flat, lr_decay_steps=11)
    run = replace(cfg, steps=3, lr_decay_steps=3, val=(), out=str(tmp_path / "decay"))
    train(run, log=lambda s: None)
    ck = torch.load(tmp_path / "decay" / "checkpoint.pt", weights_only=True)
    for opt in ("opt_g", "opt_d"):  # the last step ran at the schedule's last rate
        assert ck[opt]["param_groups"][0]["lr"] == pytest.approx(learning_rate(run, 2)) == pytest.approx(2.5e-4)


def test_data_threads_one_on_cpu_several_on_cuda(monkeypatch):
    monkeypatch.setattr("filmcolor.inference.cpu_threads", lambda: 16)
    assert data_threads(TrainConfig(), torch.device("cpu")) == 1  # the network needs the cores
    assert data_threads(TrainConfig(), torch.device("cuda")) == 8
    assert data_threads(TrainConfig(data_threads=3), torch.device("cpu")) == 3  # asked for: kept
    monkeypatch.setattr("filmcolor.inference.cpu_threads", lambda: 2)
    assert data_threads(TrainConfig(), torch.device("cuda")) == 1


def test_set_overrides_read_toml_values():
    from filmcolor.config import parse_overrides

    got = parse_overrides(["lr=2e-5", "keep_best=true", "scale_range=[0.5, 1.0]", "name=street", " steps = 7 "])
    assert got == {"lr": 2e-5, "keep_best": True, "scale_range": [0.5, 1.0], "name": "street", "steps": 7}
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_overrides(["lr"])


def test_a_training_preset_file_of_ones_own(tmp_path):
    from filmcolor.train import train_config_from_preset

    bare = tmp_path / "mine.toml"
    bare.write_text('steps = 123\nlr = 1e-4\nscale_range = [0.5, 0.75]\n')  # settings alone, no [train] header
    cfg = train_config_from_preset(str(bare), batch_size=4)
    assert (cfg.steps, cfg.lr, cfg.scale_range, cfg.batch_size) == (123, 1e-4, (0.5, 0.75), 4)
    table = tmp_path / "both.toml"
    table.write_text('[train]\nsteps = 7\n[run]\nsmooth = "off"\n')
    assert train_config_from_preset(str(table)).steps == 7
    with pytest.raises(ValueError, match=r"preset 'run' has no \[train\] table"):  # not ignored without a word
        train_config_from_preset("run")


def test_one_step_finetune_writes_genre_model_with_card(tmp_path, photos, films, monkeypatch):
    monkeypatch.setenv("FILMCOLOR_HOME", str(tmp_path / "home"))
    base = train(_cfg(tmp_path, photos, val=()), log=lambda s: None)
    dest = finetune("street", [str(f) for f in films], steps=1, from_model=str(base), out=str(tmp_path / "ft"),
                    log=lambda s: None, **{k: v for k, v in TINY.items() if k not in ("ngf", "num_downs")})
    assert dest == tmp_path / "home" / "models" / "street.safetensors" and dest.is_file()
    info = weights.available_models()["street"]
    assert info.source == "user" and info.arch_args == {"ngf": 4, "num_downs": 5}
    card = info.card
    assert card["steps"] == 1 and card["base_model"].startswith("default (file")
    assert card["data"] == [str(f) for f in films] and len(card["held_out"]) == 1  # one film held out whole
    assert card["held_out"][0] in card["data"] and card["val"] == card["held_out"]
    assert card["base_validation"]["l1"] > 0 and card["validation"]["l1"] > 0
    model, _ = weights.load_generator("street")
    with torch.no_grad():
        assert float(model(torch.zeros(1, 1, 32, 32)).abs().max()) <= 1
    with pytest.raises(ValueError):
        finetune("default", [str(films[0])], from_model=str(base))


def test_a_finetune_on_colour_stills_alone_makes_a_model(tmp_path, photos, monkeypatch):
    """A restorer's few colour stills of a film (no film to hold out): the run has nothing to validate
    on and saves the last EMA, which differs from the base it started from."""
    monkeypatch.setenv("FILMCOLOR_HOME", str(tmp_path / "home"))
    base = train(_cfg(tmp_path, photos, val=()), log=lambda s: None)
    dest = finetune("reel7", [str(photos)], steps=2, from_model=str(base), out=str(tmp_path / "ft"),
                    log=lambda s: None, **{k: v for k, v in TINY.items() if k not in ("ngf", "num_downs")})
    card = weights.available_models()["reel7"].card
    assert dest.is_file() and card["steps"] == 2 and card["held_out"] == [] and card["data"] == [str(photos)]
    tuned, _ = weights.load_generator("reel7")
    start, _ = weights.load_generator(str(base))
    assert any(not torch.equal(a, b) for a, b in zip(tuned.state_dict().values(), start.state_dict().values()))


def test_a_finetune_whose_only_colour_film_would_be_held_out_trains_on_it(tmp_path, photos, monkeypatch):
    """A restorer's folder: one colour film beside the black-and-white reels to be coloured. The colour
    film was held out for validation and training found no colour frames: "no training images"."""
    monkeypatch.setenv("FILMCOLOR_HOME", str(tmp_path / "home"))
    base = train(_cfg(tmp_path, photos, val=()), log=lambda s: None)
    folder = tmp_path / "films"
    folder.mkdir()
    colour = make_clip(folder / "a_colour.mp4", frames=12, width=96, height=64, audio=())
    reel = make_clip(folder / "b_reel.mp4", frames=12, width=96, height=64, audio=(), color=False)
    lines: list[str] = []
    dest = finetune("mixed", [str(colour), str(reel)], steps=1, from_model=str(base), out=str(tmp_path / "ft"),
                    log=lines.append, **{k: v for k, v in TINY.items() if k not in ("ngf", "num_downs")})
    assert dest.is_file() and weights.available_models()["mixed"].card["held_out"] == []
    assert any(line.startswith(f"held out {colour}, but the other films gave no colour frames") for line in lines)


def test_keep_best_saves_the_validation_with_the_lowest_l1(tmp_path, photos, films, monkeypatch):
    import csv

    from filmcolor.data import load_sources
    from filmcolor.train import _evenly, validate

    monkeypatch.setenv("FILMCOLOR_HOME", str(tmp_path / "home"))
    base = train(_cfg(tmp_path, photos, val=()), log=lambda s: None)
    # a high learning rate makes the validation L1 move a lot between steps, so the last is rarely the best
    dest = finetune("street", [str(films[0])], steps=4, from_model=str(base), val=[str(films[1])],
                    out=str(tmp_path / "ft"), log=lambda s: None, keep_best=True, lr=5e-2, warmup_steps=4, val_every=1,
                    ema_decay=0.0, **{k: v for k, v in TINY.items() if k not in ("ngf", "num_downs")})
    rows = list(csv.DictReader(open(tmp_path / "ft" / "metrics.csv")))
    assert [int(r["step"]) for r in rows] == [0, 1, 2, 3, 4]  # the base model at step 0, then every step
    best = min(rows, key=lambda r: float(r["l1"]))
    card = weights.load_generator(dest)[1].card
    assert card["selected_step"] == int(best["step"])
    assert card["validation"]["l1"] == pytest.approx(float(best["l1"]), rel=1e-5)
    assert card["last_validation"]["l1"] == pytest.approx(float(rows[-1]["l1"]), rel=1e-5)
    ck = torch.load(tmp_path / "ft" / "checkpoint.pt", weights_only=True)  # so --resume keeps the best
    assert json.loads(ck["best"])["step"] == card["selected_step"] and set(ck["best_ema"]) == set(ck["ema"])
    model, _ = weights.load_generator(dest)  # the saved weights are the selected ones (fp16 on disk)
    val = _evenly(load_sources([films[1]], 96, 6, cache=None).images, 2)
    assert validate(model, val, torch.device("cpu"), model.multiple)["l1"] == pytest.approx(float(best["l1"]), abs=2e-3)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, cfg: TrainConfig, folder: str) -> None:
    import os

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    losses: dict[int, dict[str, float]] = {}
    params: dict[str, torch.Tensor] = {}
    train(cfg, log=lambda s: None, on_step=lambda s, l: losses.setdefault(s, l),
          on_end=lambda m: params.update({k: v.detach().clone() for k, v in m["gen"].named_parameters()}))
    torch.save({"losses": losses, "params": params}, Path(folder) / f"rank{rank}.pt")


@pytest.mark.slow
def test_ddp_two_cpu_processes_end_with_identical_weights(tmp_path, photos):
    import torch.multiprocessing as mp

    cfg = _cfg(tmp_path, photos, steps=2, val=())
    mp.spawn(_ddp_worker, args=(2, _free_port(), cfg, str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert r0["params"].keys() == r1["params"].keys() and len(r0["params"]) > 10
    for k in r0["params"]:
        torch.testing.assert_close(r0["params"][k], r1["params"][k], rtol=0, atol=0, msg=k)
    assert r0["losses"][1]["l1"] != r1["losses"][1]["l1"]  # each rank sampled its own batch
    card = weights.read_info(Path(cfg.out) / "default.safetensors").card
    assert card["processes"] == 2 and card["batch_size"] == 4 and card["steps"] == 2


@pytest.mark.slow
def test_cli_train_finetune_models(tmp_path, photos, films, monkeypatch):
    from click.testing import CliRunner

    from filmcolor.cli import main

    monkeypatch.setenv("FILMCOLOR_HOME", str(tmp_path / "home"))
    runner = CliRunner()
    res = runner.invoke(main, ["train", "--preset", "train_tiny", "--data", str(photos), "--val", str(photos),
                               "--steps", "1", "--out", str(tmp_path / "run"), "-q"])
    assert res.exit_code == 0, res.output
    base = tmp_path / "run" / "tiny.safetensors"
    assert weights.read_info(base).card["steps"] == 1
    res = runner.invoke(main, ["train", "--preset", "train_tiny", "--data", str(photos), "--steps", "2",
                               "--from", str(base), "--set", "lr_decay_steps=2", "--set", "warmup_steps=2",
                               "--out", str(tmp_path / "warm"), "-q"])
    assert res.exit_code == 0, res.output
    warm = weights.read_info(tmp_path / "warm" / "tiny.safetensors").card
    assert warm["base_model"] == str(base) and warm["steps"] == 2
    config = json.loads(torch.load(tmp_path / "warm" / "checkpoint.pt", weights_only=True)["config"])
    assert config["lr_decay_steps"] == 2 and config["warmup_steps"] == 2 and config["init_from"] == str(base)
    res = runner.invoke(main, ["train", "--preset", "train_tiny", "--data", str(photos), "--set", "no_such_key=1"])
    assert res.exit_code == 2 and "no_such_key" in res.output
    res = runner.invoke(main, ["finetune", "--genre", "street", "--from", str(base), "--set", "steps=1",
                               "--set", "lr=3e-5", "--out", str(tmp_path / "ft"), "-q", *map(str, films)])
    assert res.exit_code == 0, res.output
    config = json.loads(torch.load(tmp_path / "ft" / "checkpoint.pt", weights_only=True)["config"])
    assert config["lr"] == 3e-5 and config["steps"] == 1  # --set reaches the fine-tune's config
    res = runner.invoke(main, ["finetune", "--genre", "x", "--set", "ngf=8", *map(str, films)])
    assert res.exit_code == 2 and "finetune sets these itself" in res.output
    res = runner.invoke(main, ["finetune", "--genre", "noir", "--from", str(base), "--steps", "50",
                               "--max-minutes", "1e-9", "--out", str(tmp_path / "ft2"), "-q", *map(str, films)])
    assert res.exit_code == 0, res.output
    noir = weights.read_info(tmp_path / "home" / "models" / "noir.safetensors").card
    assert noir["steps"] == 1 and noir["planned_steps"] == 50  # stopped by the time limit, saved all the same
    from filmcolor.cli import _card_summary

    assert _card_summary(noir)[1] == "1 (time limit)"  # what the `models` table shows in its steps column
    res = runner.invoke(main, ["models"])
    assert res.exit_code == 0 and "street" in res.output and "user" in res.output
    res = runner.invoke(main, ["models", "--json"])
    assert json.loads(res.output)["street"]["card"]["steps"] == 1
    res = runner.invoke(main, ["train", "--preset", "train_tiny", "--data", str(tmp_path / "home")])  # no images
    assert res.exit_code == 2 and "no training images" in res.output
    bw = make_clip(tmp_path / "bw.mp4", frames=12, color=False, audio=())
    res = runner.invoke(main, ["finetune", "--genre", "noir2", "--steps", "1", str(bw)])
    assert res.exit_code == 2 and "black-and-white" in res.output and "needs colour footage" in res.output
    assert runner.invoke(main, ["train", "--preset", "nope", "--data", str(photos)]).exit_code == 2


def test_validation_as_run_keeps_luminance_and_matches_at_full_render_size():
    from helpers import tiny_generator

    from filmcolor import color
    from filmcolor.inference import Colorizer
    from filmcolor.train import colourise_rgb, colourise_rgb_as_run, validate

    gen = tiny_generator().eval()
    rgb = synthetic_frame(3, 96, 64)  # (64, 96): short side 64, a multiple of the tiny U-Net's
    same = Colorizer(gen, "cpu", "fp32", batch_size=1, render_size=64, fold_bn=False)
    out_run, grey_run, l1_run = colourise_rgb_as_run(same, rgb)
    out, grey, l1 = colourise_rgb(gen, rgb, torch.device("cpu"), gen.multiple)
    assert np.abs(out_run - out).max() < 5e-3 and l1_run == pytest.approx(l1, rel=1e-2)  # numpy vs torch Lab
    small = Colorizer(gen, "cpu", "fp32", batch_size=1, render_size=32, fold_bn=False)
    out_small, _, _ = colourise_rgb_as_run(small, rgb)
    L_ref = color.rgb_to_lab_np(rgb.astype(np.float32) / 255)[..., 0]
    L_out = color.rgb_to_lab_np(np.clip(out_small, 0, 1))[..., 0]
    assert out_small.shape == rgb.shape and np.abs(L_out - L_ref).mean() < 1.0  # the photo's own L
    m = validate(gen, [rgb], torch.device("cpu"), gen.multiple, render_size=32)
    assert {"ciede2000", "grey_ciede2000", "l1", "psnr"} <= set(m) and np.isfinite(m["ciede2000"])


def test_recalibrated_bn_statistics_are_those_of_the_weights_in_use():
    """After recalibration on one batch, the model in eval mode normalises that batch with its own
    statistics, i.e. gives what train mode gives; before, it used stale statistics and did not."""
    import copy

    from filmcolor.data import sample_batch
    from filmcolor.model import UNetGenerator
    from filmcolor.train import lab_batch, recalibrate_bn

    torch.manual_seed(0)
    images = [synthetic_frame(7 * i, 96, 80) for i in range(4)]
    gen = UNetGenerator(ngf=4, num_downs=5).eval()
    for m in gen.modules():  # stale statistics, as an EMA copy of another set of weights carries
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_(0.0, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    L = lab_batch(torch.as_tensor(sample_batch(images, 16, 64, np.random.default_rng(3), (0.7, 1.0))), "cpu")[0]
    with torch.no_grad():
        want = copy.deepcopy(gen).train()(L)  # batch statistics
        stale = gen(L)
    assert (stale - want).abs().max() > 0.1
    recalibrate_bn(gen, images, batches=1, crop=64, seed=3)
    assert not gen.training  # mode kept
    with torch.no_grad():
        got = gen(L)
    # running_var is the unbiased batch variance, train mode divides by the biased one: close, not equal
    assert (got - want).abs().max() < 1e-2
    again = recalibrate_bn(copy.deepcopy(gen), images, batches=2, crop=64, seed=3)
    once_more = recalibrate_bn(copy.deepcopy(gen), images, batches=2, crop=64, seed=3)
    for a, b in zip(again.buffers(), once_more.buffers()):
        assert torch.equal(a, b)  # the same seed gives the same statistics


def test_a_damaged_user_model_is_named_not_called_unknown(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from filmcolor.cli import main

    monkeypatch.setenv("FILMCOLOR_HOME", str(tmp_path / "home"))
    (tmp_path / "home" / "models").mkdir(parents=True)
    broken = tmp_path / "home" / "models" / "noir.safetensors"
    broken.write_bytes(b"half a download")
    with pytest.raises(ModelError, match="not a readable safetensors file"):  # was: "unknown model 'noir'"
        weights.resolve_model("noir")
    res = CliRunner().invoke(main, ["models"])
    assert res.exit_code == 0 and f"warning: {broken}: not a readable safetensors file" in res.output
    assert "default" in res.output
