"""The fast paths give the same films as the plain ones: pipelined vs sequential, BatchNorm folding,
split CPU batches, device-side compose (run on CPU tensors here), and errors in the encode thread."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import torch

from filmcolor import compose, media, pipeline, synth, temporal
from filmcolor.config import RunConfig
from filmcolor.inference import (OPENCV_MAX_THREADS, Colorizer, cpu_has_native_bf16, fold_batchnorm, resolve_device,
                                 resolve_precision)
from helpers import tiny_generator, tiny_model

THREAD_NAMES = ("filmcolor-decode", "filmcolor-flow", "filmcolor-compose", "filmcolor-encode")


@pytest.fixture(scope="module")
def model_path(tmp_path_factory) -> Path:
    return tiny_model(tmp_path_factory.mktemp("model") / "tiny.safetensors")


def config(model_path: Path, **kw) -> RunConfig:
    return RunConfig(**{"model": str(model_path), "device": "cpu", "render_size": 48, "batch_size": 4, **kw})


def planes(path: Path) -> list[tuple[np.ndarray, int]]:
    """(Y, U and V planes stacked as yuv420p, pts) of every frame."""
    with av.open(str(path)) as c:
        return [(f.to_ndarray(format="yuv420p"), f.pts) for f in c.decode(video=0)]


def live_pipeline_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name in THREAD_NAMES and t.is_alive()]


def random_bn_generator(seed: int = 1) -> torch.nn.Module:
    """A tiny generator whose BatchNorm layers have non-trivial running statistics and affine terms."""
    model = tiny_generator(seed)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.3)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) * 2 + 0.2)
                m.weight.copy_(torch.randn(m.num_features, generator=g) * 0.5 + 1)
                m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.2)
    return model.eval()


# --- BatchNorm folding ----------------------------------------------------------------------------
def test_fold_batchnorm_is_exact_and_leaves_the_model_alone():
    model = random_bn_generator()
    folded = fold_batchnorm(model)
    assert not any(isinstance(m, (torch.nn.BatchNorm2d, torch.nn.Dropout)) for m in folded.modules())
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules()) > 0  # original untouched
    x = torch.rand(3, 1, 64, 96) * 2 - 1
    with torch.inference_mode():
        ref, out = model(x), folded(x)
    assert (ref - out).abs().max().item() < 1e-4
    assert ref.abs().mean().item() > 0.05  # the comparison is not between two near-zero outputs


def test_colorizer_with_and_without_folding_agree():
    L = np.random.default_rng(0).uniform(0, 100, (5, 48, 85)).astype(np.float32)
    model = random_bn_generator()
    a = Colorizer(model, "cpu", "fp32", batch_size=4, render_size=48, fold_bn=False, workers=1).predict_ab(L)
    b = Colorizer(model, "cpu", "fp32", batch_size=4, render_size=48, workers=1).predict_ab(L)
    assert np.abs(a - b).max() < 110 * 1e-4


def test_shrinking_L_by_halves_stays_within_a_tenth_of_one_area_resize():
    """resize_L halves first when shrinking 5x or more (1080p -> render size): close to one area
    resize on film-like texture; below 5x (480p) it is exactly OpenCV's area resize."""
    rng = np.random.default_rng(0)
    L = cv2.GaussianBlur(rng.uniform(0, 100, (1080, 1920)).astype(np.float32), (0, 0), 3)
    one = cv2.resize(L, (341, 192), interpolation=cv2.INTER_AREA)
    fast = compose.resize_L(L, 192, 341)
    assert fast.shape == (192, 341) and fast.dtype == np.float32
    err = np.abs(fast - one)
    assert err.mean() < 0.1 and err.max() < 1.0, (err.mean(), err.max())
    small = L[:480, :854]
    area = cv2.resize(small, (342, 192), interpolation=cv2.INTER_AREA)
    assert np.array_equal(compose.resize_L(small, 192, 342), area)


def test_colorizer_caps_opencv_threads():
    before = cv2.getNumThreads()
    try:
        cv2.setNumThreads(OPENCV_MAX_THREADS + 4)
        Colorizer(tiny_generator(), "cpu", "fp32", batch_size=2, render_size=48, workers=1)
        assert cv2.getNumThreads() == OPENCV_MAX_THREADS
        cv2.setNumThreads(1)  # a smaller pool is left as it is
        Colorizer(tiny_generator(), "cpu", "fp32", batch_size=2, render_size=48, workers=1)
        assert cv2.getNumThreads() == 1
    finally:
        cv2.setNumThreads(before)


def test_auto_precision_on_cpu_is_bf16_only_with_native_bf16(monkeypatch):
    avx512 = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512bw avx512vl\n"
    assert not cpu_has_native_bf16(avx512)  # oneDNN would emulate bf16 there: slower than fp32
    assert cpu_has_native_bf16(avx512.replace("avx512vl", "avx512vl avx512_bf16"))
    assert cpu_has_native_bf16("flags : sse2 amx_tile amx_bf16\n")
    assert not cpu_has_native_bf16("model name : some arm chip\n")  # no flags line
    cpu = torch.device("cpu")
    for native, dtype in ((True, torch.bfloat16), (False, torch.float32)):
        monkeypatch.setattr("filmcolor.inference.cpu_has_native_bf16", lambda native=native: native)
        assert resolve_precision("auto", cpu) == dtype
        assert resolve_precision("fp32", cpu) == torch.float32  # an explicit choice always wins


def test_bf16_colours_within_tolerance_of_fp32_with_the_packaged_model():
    """The tolerance behind `auto` = bf16 on CPUs with native bf16: on a real film frame the packaged
    model's a/b differ from fp32 by well under one a/b unit (a just-noticeable colour difference)."""
    frame = synth.synthetic_frame(7, 342, 192).astype(np.float32) / 255
    from filmcolor import color, weights

    L = color.rgb_to_lab_np(frame)[..., 0][None]
    model = weights.load_generator("default")[0]
    fp32 = Colorizer(model, "cpu", "fp32", batch_size=1, render_size=192, workers=1).predict_ab(L)
    bf16 = Colorizer(model, "cpu", "bf16", batch_size=1, render_size=192, workers=1).predict_ab(L)
    diff = np.abs(bf16 - fp32)
    assert np.abs(fp32).mean() > 1.0  # coloured, so the comparison means something
    assert diff.max() < 1.0 and diff.mean() < 0.1, (diff.max(), diff.mean())


def test_split_batches_match_one_worker():
    L = np.random.default_rng(1).uniform(0, 100, (7, 48, 64)).astype(np.float32)
    one = Colorizer(tiny_generator(), "cpu", "fp32", batch_size=4, render_size=48, workers=1)
    two = Colorizer(tiny_generator(), "cpu", "fp32", batch_size=4, render_size=48, threads=2, workers=2)
    try:
        assert two.workers == 2 and two.intra_threads == 1
        np.testing.assert_allclose(two.predict_ab(L), one.predict_ab(L), atol=1e-3)
    finally:
        two.close()


# --- pipelined vs sequential ------------------------------------------------------------------------
@pytest.mark.parametrize("smooth,flow_thread", [("ema", False), ("flow", False), ("flow", True)])
def test_pipelined_output_is_identical_to_sequential(tmp_path, model_path, monkeypatch, smooth, flow_thread):
    src = synth.make_clip(tmp_path / "a.mp4", frames=23, width=96, height=64, color=False)
    col = Colorizer(tiny_generator(), "cpu", "fp32", batch_size=4, render_size=48, threads=2, workers=2)
    # the flow thread runs on CUDA or >= 4 cores: force it on (or off) whatever this machine has
    monkeypatch.setattr(pipeline, "flow_thread_pays", lambda colorizer: flow_thread)
    flow_in = set()
    real = temporal.FlowMotion.__call__
    monkeypatch.setattr(temporal.FlowMotion, "__call__",
                        lambda self, L: flow_in.add(threading.current_thread().name) or real(self, L))
    # what reaches the encoder, and then the files: equal bytes hold since x264 is kept off its
    # AVX-512 code (media.x264_params), which varied run to run with identical frames
    handed: list[tuple[np.ndarray, int]] = []
    write = media.VideoWriter.write
    monkeypatch.setattr(media.VideoWriter, "write",
                        lambda self, f: handed.append((f.to_ndarray(format="yuv420p"), f.pts)) or write(self, f))
    try:
        cfg = config(model_path, smooth=smooth)
        seq = pipeline.colorize_file(src, tmp_path / "seq.mp4", cfg, colorizer=col, pipelined=False)
        assert flow_in == ({threading.current_thread().name} if smooth == "flow" else set())
        flow_in.clear()
        a, handed = handed, []
        par = pipeline.colorize_file(src, tmp_path / "par.mp4", cfg, colorizer=col, pipelined=True)
        if smooth == "flow":  # in its own thread, or by the smoother in the calling thread
            assert flow_in == {"filmcolor-flow" if flow_thread else threading.current_thread().name}
    finally:
        col.close()
    assert seq.frames == par.frames == 23
    b = handed
    assert len(a) == len(b) == 23
    for (pa, ta), (pb, tb) in zip(a, b):
        assert ta == tb
        np.testing.assert_array_equal(pa, pb)  # bit-identical: the same frames reach the same encoder
    assert [t for _, t in planes(seq.dst)] == [t for _, t in planes(par.dst)]
    assert seq.dst.read_bytes() == par.dst.read_bytes()
    assert not live_pipeline_threads()


def test_pipelined_progress_counts_every_frame_once(tmp_path, model_path):
    src = synth.make_clip(tmp_path / "a.mp4", frames=17, color=False)
    seen = []
    pipeline.colorize_file(src, config=config(model_path), progress=lambda d, t: seen.append(d))
    assert seen == list(range(1, 18))


# --- errors ---------------------------------------------------------------------------------------
class Boom(RuntimeError):
    pass


@pytest.mark.parametrize("pipelined", [True, False])
def test_error_in_encode_thread_propagates_and_leaves_no_file(tmp_path, model_path, monkeypatch, pipelined):
    src = synth.make_clip(tmp_path / "a.mp4", frames=30, color=False)
    before = sorted(p.name for p in tmp_path.iterdir())
    real, calls, where = media.VideoWriter.write, [0], []

    def failing(self, frame):
        calls[0] += 1
        if calls[0] == 9:
            where.append(threading.current_thread().name)
            raise Boom("encoder exploded")
        return real(self, frame)

    monkeypatch.setattr(media.VideoWriter, "write", failing)
    with pytest.raises(Boom, match="exploded"):
        pipeline.colorize_file(src, config=config(model_path), pipelined=pipelined)
    assert where == (["filmcolor-encode"] if pipelined else [threading.current_thread().name])
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # neither the output nor a temp file
    assert not live_pipeline_threads()


def test_ctrl_c_while_encoding_leaves_no_file_and_no_threads(tmp_path, model_path, monkeypatch):
    src = synth.make_clip(tmp_path / "a.mp4", frames=40, color=False)
    before = sorted(p.name for p in tmp_path.iterdir())
    real = media.VideoWriter.write

    def slow(self, frame):
        time.sleep(0.01)
        return real(self, frame)

    monkeypatch.setattr(media.VideoWriter, "write", slow)

    def interrupt(done, total):
        if done >= 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        pipeline.colorize_file(src, config=config(model_path), progress=interrupt)
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert not live_pipeline_threads()


def test_sink_is_bounded_and_reraises_the_consumer_error():
    seen, gate = [], threading.Event()

    def consume(x):
        gate.wait(5)
        if x == 7:
            raise Boom("at 7")
        seen.append(x)

    sink = pipeline.Sink(consume, 2)
    t0 = time.perf_counter()
    blocked = threading.Thread(target=lambda: [sink.put(i) for i in range(4)], daemon=True)
    blocked.start()
    blocked.join(0.3)
    assert blocked.is_alive()  # queue of 2 + one in hand: the 4th put waits
    gate.set()
    blocked.join(5)
    with pytest.raises(Boom):
        for i in range(4, 50):
            sink.put(i)
        sink.close()
    assert seen == list(range(7)) and time.perf_counter() - t0 < 10
    sink.abort()
    assert not sink._thread.is_alive()


# --- device-side compose, checked on CPU tensors ---------------------------------------------------
@pytest.mark.parametrize("w, h, bits, full", [(96, 64, 8, False), (64, 48, 8, True), (97, 63, 10, False)])
def test_compose_uv_matches_host_compose(w, h, bits, full):
    rng = np.random.default_rng(5)
    dtype = np.uint8 if bits == 8 else np.uint16
    top = (1 << bits) - 1
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    picture = 0.25 + 0.5 * (0.6 * xx / w + 0.4 * yy / h) + rng.normal(0, 0.01, (h, w))  # film-like, mid-tones
    y = np.clip(picture * top, 0, top).astype(dtype)
    ch, cw = (h + 1) // 2, (w + 1) // 2
    planes = media.Planes(y=y, u=np.zeros((ch, cw), dtype), v=np.zeros((ch, cw), dtype), bit_depth=bits,
                          full_range=full, matrix="bt601")
    ab = rng.normal(0, 15, (2, 24, 36)).astype(np.float32)
    u0, v0 = compose.compose_planes(planes, ab)
    col = Colorizer(tiny_generator(), "cpu", "fp32", batch_size=2, render_size=24, workers=1)
    u1, v1 = col.compose_uv(y, ab, (ch, cw), "bt601", bits, full)
    assert u1.dtype == u0.dtype and u1.shape == u0.shape
    tol = 2 << (bits - 8)  # resampling and gamma rounding differ between OpenCV and torch
    for a, b in ((u0, u1), (v0, v1)):
        diff = np.abs(a.astype(np.int32) - b.astype(np.int32))
        assert diff.max() <= tol and diff.mean() < 0.5 * tol


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_pipeline_matches_cpu(tmp_path, model_path):
    src = synth.make_clip(tmp_path / "a.mp4", frames=12, width=96, height=64, color=False)
    cpu = Colorizer(tiny_generator(), "cpu", "fp32", batch_size=4, render_size=48, workers=1)
    gpu = Colorizer(tiny_generator(), resolve_device("cuda"), "fp32", batch_size=4, render_size=48, auto_batch=True)
    assert gpu.on_device_compose and gpu.plan_batch(48, 72) >= 4
    a = pipeline.colorize_file(src, tmp_path / "cpu.mp4", config(model_path), colorizer=cpu)
    b = pipeline.colorize_file(src, tmp_path / "gpu.mp4", config(model_path, device="cuda"), colorizer=gpu)
    for (pa, _), (pb, _) in zip(planes(a.dst), planes(b.dst)):
        assert np.abs(pa.astype(np.int32) - pb.astype(np.int32)).max() <= 3
