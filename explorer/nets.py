"""Shared building blocks: a small conv encoder and decoder for images of any (C, H, W) whose sides their
strides allow (28x28x1, 32x32x3, 64x64x3, ...), and the diffusion denoisers (a small UNet for pixels, a
residual MLP for latent codes)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

IMAGE_SHAPE = (1, 28, 28)  # the default (C, H, W): what configs written before image_shape existed mean


def conv_levels(image_shape) -> tuple[int, int, int]:
    """(stride-2 levels, H, W at the bottom) of the conv encoder/decoder for ``image_shape`` (C, H, W): two
    levels, and one more while the bottom is larger than 8x8 and halves evenly (28 -> 7, 32 -> 8, 64 -> 8).
    Raises ValueError for sides the strides cannot take."""
    c, h, w = (int(s) for s in image_shape)
    if c < 1 or h % 4 or w % 4 or min(h, w) < 8:
        raise ValueError(f"image shape {tuple(image_shape)}: height and width must be multiples of 4 and >= 8 "
                         "(two stride-2 levels)")
    levels = 2
    while max(h, w) >> levels > 8 and h % (2 << levels) == 0 and w % (2 << levels) == 0:
        levels += 1
    return levels, h >> levels, w >> levels


class ConvEncoder(nn.Module):
    """(N, C, H, W) -> (N, out_features) through stride-2 convs (two for 28x28, three for 64x64) and an MLP."""

    def __init__(self, out_features: int, channels: int = 32, hidden: int = 256, dropout: float = 0.0,
                 image_shape=IMAGE_SHAPE):
        super().__init__()
        c = channels
        levels, h, w = conv_levels(image_shape)
        extra = []
        for _ in range(levels - 2):  # beyond 28x28: more stride-2 convs at width 2c
            extra += [nn.Conv2d(2 * c, 2 * c, 4, stride=2, padding=1), nn.SiLU()]
        self.net = nn.Sequential(
            nn.Conv2d(int(image_shape[0]), c, 3, padding=1), nn.SiLU(),
            nn.Conv2d(c, c, 4, stride=2, padding=1), nn.SiLU(),           # (N, c, H/2, W/2)
            nn.Conv2d(c, 2 * c, 4, stride=2, padding=1), nn.SiLU(),       # (N, 2c, H/4, W/4)
            *extra,                                                       # (N, 2c, h, w)
            nn.Flatten(),                                                 # (N, 2c*h*w)
            nn.Dropout(dropout),
            nn.Linear(2 * c * h * w, hidden), nn.SiLU(),
            nn.Linear(hidden, out_features),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class ConvDecoder(nn.Module):
    """(N, in_features) -> logits (N, C, H, W); apply sigmoid for pixels in [0, 1]. ``dropout`` on the
    bottom features makes a deliberately weak decoder (the Decoupled Autoencoder's stage 1)."""

    def __init__(self, in_features: int, channels: int = 32, hidden: int = 256, dropout: float = 0.0,
                 image_shape=IMAGE_SHAPE):
        super().__init__()
        c = channels
        self.c = c
        levels, self.h, self.w = conv_levels(image_shape)
        extra = []
        for _ in range(levels - 2):  # beyond 28x28: more stride-2 transposed convs at width 2c
            extra += [nn.ConvTranspose2d(2 * c, 2 * c, 4, stride=2, padding=1), nn.SiLU()]
        self.fc = nn.Sequential(nn.Linear(in_features, hidden), nn.SiLU(),
                                nn.Linear(hidden, 2 * c * self.h * self.w), nn.SiLU(), nn.Dropout(dropout))
        self.net = nn.Sequential(
            *extra,                                                           # (N, 2c, H/4, W/4)
            nn.ConvTranspose2d(2 * c, c, 4, stride=2, padding=1), nn.SiLU(),  # (N, c, H/2, W/2)
            nn.ConvTranspose2d(c, c, 4, stride=2, padding=1), nn.SiLU(),      # (N, c, H, W)
            nn.Conv2d(c, int(image_shape[0]), 3, padding=1),                  # (N, C, H, W)
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.fc(z).view(-1, 2 * self.c, self.h, self.w)  # (N, 2c, h, w)
        return self.net(h)


# ---------------------------------------------------------------- diffusion denoisers
def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of (B,) timesteps -> (B, dim)  (Vaswani et al. 2017, Sec. 3.5, as in DDPM)."""
    import math

    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]                       # (B, half)
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)   # (B, 2*half)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)  # (B, dim)
    return emb


def _zero(module: nn.Module) -> nn.Module:
    """Zero-initialise a layer's weights and bias: the residual branch starts as the identity."""
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class Conditioning(nn.Module):
    """Timestep + class -> one embedding (B, dim). Label ``classes`` is the "null" class used for
    label dropout and the unconditional half of classifier-free guidance."""

    def __init__(self, dim: int, classes: int, base: int):
        super().__init__()
        self.base = base
        self.time = nn.Sequential(nn.Linear(base, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.label = nn.Embedding(classes + 1, dim)

    def forward(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.time(timestep_embedding(t, self.base)) + self.label(y)  # (B, dim)


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv twice, the conditioning added in between (Ho et al. 2020's Wide-ResNet block)."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int, groups: int = 8, dropout: float = 0.0):
        super().__init__()
        self.block1 = nn.Sequential(nn.GroupNorm(min(groups, c_in), c_in), nn.SiLU(), nn.Conv2d(c_in, c_out, 3, padding=1))
        self.emb = nn.Sequential(nn.SiLU(), nn.Linear(emb_dim, c_out))
        self.block2 = nn.Sequential(nn.GroupNorm(min(groups, c_out), c_out), nn.SiLU(), nn.Dropout(dropout),
                                    _zero(nn.Conv2d(c_out, c_out, 3, padding=1)))
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.block1(x) + self.emb(emb)[:, :, None, None]  # (B, c_out, H, W)
        return self.skip(x) + self.block2(h)


class AttentionBlock(nn.Module):
    """Self-attention over the H*W positions (used at 7x7), residual, zero-initialised output."""

    def __init__(self, c: int, heads: int = 4, groups: int = 8):
        super().__init__()
        self.heads = heads
        self.norm = nn.GroupNorm(min(groups, c), c)
        self.qkv = nn.Conv2d(c, 3 * c, 1)
        self.proj = _zero(nn.Conv2d(c, c, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        qkv = self.qkv(self.norm(x)).view(B, 3, self.heads, C // self.heads, H * W)  # (B, 3, nh, hs, HW)
        q, k, v = qkv.transpose(-1, -2).unbind(1)                                     # each (B, nh, HW, hs)
        h = nn.functional.scaled_dot_product_attention(q, k, v)                       # (B, nh, HW, hs)
        h = h.transpose(-1, -2).reshape(B, C, H, W)                                   # (B, C, H, W)
        return x + self.proj(h)


@dataclass
class UNetConfig:
    in_channels: int = 1
    channels: int = 32                 # base width; level i has channels * mults[i]
    mults: tuple = (1, 2, 2)           # 28x28 -> 14x14 -> 7x7
    res_blocks: int = 1                # per level, down and up
    attention: bool = True             # one attention block at the lowest resolution (7x7) and in the middle
    classes: int = 10
    dropout: float = 0.0


class UNet(nn.Module):
    """A small UNet eps_theta(x_t, t, y) for 28x28 images: sinusoidal time embedding, class embedding
    with a null class, GroupNorm res blocks, optional attention at 7x7, skip connections per level."""

    def __init__(self, config: UNetConfig):
        super().__init__()
        cfg = self.config = config
        chs = [cfg.channels * m for m in cfg.mults]
        emb = 4 * cfg.channels
        self.cond = Conditioning(emb, cfg.classes, cfg.channels)
        self.conv_in = nn.Conv2d(cfg.in_channels, cfg.channels, 3, padding=1)
        self.down, self.downsample = nn.ModuleList(), nn.ModuleList()
        c = cfg.channels
        last = len(chs) - 1
        for i, ch in enumerate(chs):
            blocks = []
            for _ in range(cfg.res_blocks):
                blocks.append(ResBlock(c, ch, emb, dropout=cfg.dropout))
                c = ch
            self.down.append(nn.ModuleList(blocks))
            self.downsample.append(nn.Conv2d(c, c, 3, stride=2, padding=1) if i < last else nn.Identity())
        self.down_attn = AttentionBlock(c) if cfg.attention else nn.Identity()
        self.mid1, self.mid2 = ResBlock(c, c, emb), ResBlock(c, c, emb)
        self.mid_attn = AttentionBlock(c) if cfg.attention else nn.Identity()
        self.up, self.upsample = nn.ModuleList(), nn.ModuleList()
        for i in reversed(range(len(chs))):
            blocks = [ResBlock(c + chs[i], chs[i], emb, dropout=cfg.dropout)]
            blocks += [ResBlock(chs[i], chs[i], emb, dropout=cfg.dropout) for _ in range(cfg.res_blocks - 1)]
            c = chs[i]
            self.up.append(nn.ModuleList(blocks))
            self.upsample.append(nn.Conv2d(c, c, 3, padding=1) if i > 0 else nn.Identity())
        self.up_attn = AttentionBlock(chs[-1]) if cfg.attention else nn.Identity()
        self.out = nn.Sequential(nn.GroupNorm(min(8, c), c), nn.SiLU(), _zero(nn.Conv2d(c, cfg.in_channels, 3, padding=1)))

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """x (B, C, 28, 28), t (B,) timesteps, y (B,) labels (``classes`` = null) -> eps (B, C, 28, 28)."""
        emb = self.cond(t, y)
        h = self.conv_in(x)
        skips = []
        last = len(self.down) - 1
        for i, (blocks, down) in enumerate(zip(self.down, self.downsample)):
            for block in blocks:
                h = block(h, emb)
            if i == last:
                h = self.down_attn(h)
            skips.append(h)
            h = down(h)                                          # (B, c, H/2, W/2) except at the last level
        h = self.mid2(self.mid_attn(self.mid1(h, emb)), emb)
        for j, (blocks, up) in enumerate(zip(self.up, self.upsample)):
            skip = skips.pop()
            h = torch.cat([h, skip], dim=1)                      # (B, c + c_skip, H, W)
            for block in blocks:
                h = block(h, emb)
            if j == 0:
                h = self.up_attn(h)
            if j < last:
                h = nn.functional.interpolate(h, size=skips[-1].shape[-2:], mode="nearest")  # (B, c, 2H, 2W)
                h = up(h)
        return self.out(h)


class MLPDenoiser(nn.Module):
    """eps_theta(z_t, t, y) for flat latent codes (B, D): residual MLP blocks, conditioning added in each."""

    def __init__(self, dim: int, hidden: int = 256, blocks: int = 3, classes: int = 10):
        super().__init__()
        self.cond = Conditioning(hidden, classes, 64)
        self.inp = nn.Linear(dim, hidden)
        self.blocks = nn.ModuleList(
            nn.ModuleDict({"norm": nn.LayerNorm(hidden), "fc1": nn.Linear(hidden, 2 * hidden),
                           "emb": nn.Linear(hidden, 2 * hidden), "fc2": _zero(nn.Linear(2 * hidden, hidden))})
            for _ in range(blocks))
        self.out = nn.Sequential(nn.LayerNorm(hidden), nn.SiLU(), _zero(nn.Linear(hidden, dim)))

    def forward(self, z: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        emb = self.cond(t, y)                                    # (B, hidden)
        h = self.inp(z)
        for b in self.blocks:
            u = nn.functional.silu(b["fc1"](b["norm"](h)) + b["emb"](nn.functional.silu(emb)))  # (B, 2*hidden)
            h = h + b["fc2"](u)
        return self.out(h)
