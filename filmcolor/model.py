"""Networks: the pix2pix U-Net generator (L in, ab out) and the 70x70 PatchGAN discriminator.

Both follow Isola et al. 2017 ("Image-to-Image Translation with Conditional Adversarial Networks"):
4x4 convolutions with stride 2, BatchNorm, LeakyReLU(0.2) in the encoder, ReLU in the decoder,
skip connections between mirrored layers, dropout 0.5 in the innermost decoder blocks and a tanh
output. Width (``ngf``) and depth (``num_downs``) are arguments so that the packaged default can be
sized for CPU speed; a generator with ``num_downs`` downsamplings needs inputs whose sides are
multiples of ``2 ** num_downs`` (see :func:`required_multiple`).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

ARCHITECTURES = ("unet",)


def required_multiple(num_downs: int) -> int:
    """Side lengths a U-Net with ``num_downs`` downsamplings accepts are multiples of this."""
    return 2**num_downs


class _UNetBlock(nn.Module):
    """One U-Net level: down(x) -> inner -> up, concatenated with x (except at the outermost)."""

    def __init__(self, outer: int, inner: int, in_ch: int | None = None, sub: nn.Module | None = None,
                 outermost: bool = False, innermost: bool = False, dropout: bool = False,
                 out_ch: int | None = None) -> None:
        super().__init__()
        self.outermost = outermost
        in_ch = outer if in_ch is None else in_ch
        down_conv = nn.Conv2d(in_ch, inner, 4, stride=2, padding=1, bias=False)
        if outermost:
            up = nn.ConvTranspose2d(inner * 2, out_ch if out_ch is not None else outer, 4, stride=2, padding=1)
            layers: list[nn.Module] = [down_conv, sub, nn.ReLU(True), up, nn.Tanh()]
        elif innermost:
            up = nn.ConvTranspose2d(inner, outer, 4, stride=2, padding=1, bias=False)
            layers = [nn.LeakyReLU(0.2, True), down_conv, nn.ReLU(True), up, nn.BatchNorm2d(outer)]
        else:
            up = nn.ConvTranspose2d(inner * 2, outer, 4, stride=2, padding=1, bias=False)
            layers = [nn.LeakyReLU(0.2, True), down_conv, nn.BatchNorm2d(inner), sub,
                      nn.ReLU(True), up, nn.BatchNorm2d(outer)]
            if dropout:
                layers.append(nn.Dropout(0.5))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.outermost:
            return self.model(x)
        return torch.cat([x, self.model(x)], 1)


class UNetGenerator(nn.Module):
    """pix2pix U-Net: ``(N, 1, H, W)`` normalised L in [-1, 1] -> ``(N, 2, H, W)`` ab in [-1, 1].

    H and W must be multiples of ``2 ** num_downs``. Channels per level are
    ``ngf * (1, 2, 4, 8, 8, ...)``; the ``num_downs - 5`` innermost decoder blocks use dropout
    (active in train mode only: inference is deterministic, which temporal smoothing relies on).
    """

    def __init__(self, ngf: int = 64, num_downs: int = 8, in_channels: int = 1, out_channels: int = 2) -> None:
        super().__init__()
        if num_downs < 5:
            raise ValueError(f"num_downs must be >= 5, got {num_downs}")
        self.ngf, self.num_downs = ngf, num_downs
        block = _UNetBlock(ngf * 8, ngf * 8, innermost=True)
        for _ in range(num_downs - 5):
            block = _UNetBlock(ngf * 8, ngf * 8, sub=block, dropout=True)
        block = _UNetBlock(ngf * 4, ngf * 8, sub=block)
        block = _UNetBlock(ngf * 2, ngf * 4, sub=block)
        block = _UNetBlock(ngf, ngf * 2, sub=block)
        self.net = _UNetBlock(ngf, ngf, in_ch=in_channels, sub=block, outermost=True, out_ch=out_channels)

    @property
    def multiple(self) -> int:
        return required_multiple(self.num_downs)

    def forward(self, L: torch.Tensor) -> torch.Tensor:
        return self.net(L)


class PatchDiscriminator(nn.Module):
    """70x70 PatchGAN on (L, ab) pairs: ``(N, 3, H, W)`` in [-1, 1] -> ``(N, 1, H/8-2, W/8-2)`` logits.

    C64-C128-C256-C512 (no norm on the first layer), then a 1-channel 4x4 convolution; every output
    logit sees a 70x70 patch of the input. Conditioning on L is by concatenating it with ab.
    """

    def __init__(self, in_channels: int = 3, ndf: int = 64, n_layers: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_channels, ndf, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2**n, 8)
            stride = 2 if n < n_layers else 1
            layers += [nn.Conv2d(ndf * prev, ndf * mult, 4, stride, 1, bias=False),
                       nn.BatchNorm2d(ndf * mult), nn.LeakyReLU(0.2, True)]
        layers.append(nn.Conv2d(ndf * mult, 1, 4, 1, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, L: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([L, ab], 1))


def init_weights(module: nn.Module, gain: float = 0.02) -> None:
    """pix2pix initialisation: N(0, 0.02) for convolutions, N(1, 0.02) for BatchNorm scales."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, gain)
            nn.init.zeros_(m.bias)


_FACTORIES = {"unet": UNetGenerator}


def build_generator(arch: str, **kwargs: Any) -> nn.Module:
    """Build a generator by architecture name; unknown names raise ``ValueError`` listing the known."""
    try:
        factory = _FACTORIES[arch]
    except KeyError:
        raise ValueError(f"unknown architecture {arch!r}; known: {', '.join(sorted(_FACTORIES))}") from None
    return factory(**kwargs)
