"""The packaged default model: present, small, fp16, self-describing, and it colours."""

from __future__ import annotations

import torch
from safetensors import safe_open

from filmcolor import weights


def test_packaged_default_model_is_fp16_under_30mb_with_a_card():
    info = weights.resolve_model("default")
    assert info.source == "packaged" and info.path.parent == weights.PACKAGED_DIR
    assert info.path.stat().st_size <= 30 * 1024 * 1024
    with safe_open(str(info.path), framework="pt") as f:
        dtypes = {f.get_tensor(k).dtype for k in f.keys()}
    assert torch.float16 in dtypes and torch.float32 not in dtypes
    val = info.card["validation"]
    for key in ("psnr", "ciede2000", "colourfulness", "grey_psnr", "grey_ciede2000", "ref_colourfulness"):
        assert key in val, key
    assert val["images"] >= 100 and info.card["steps"] >= 1000
    assert (weights.PACKAGED_DIR / "default.md").is_file()


def test_packaged_default_model_colours_a_gradient():
    model, info = weights.load_generator("default")
    L = torch.linspace(-1, 1, 64 * 128).view(1, 1, 64, 128)
    with torch.no_grad():
        ab = model(L)
    assert ab.shape == (1, 2, 64, 128) and torch.isfinite(ab).all()
    assert float(ab.abs().max()) <= 1.0 and float(ab.abs().mean()) > 1e-3  # tanh range, and not grey
