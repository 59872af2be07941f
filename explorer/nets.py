"""Shared building blocks: a small conv encoder and decoder for 28x28 images."""
from __future__ import annotations

import torch
from torch import nn


class ConvEncoder(nn.Module):
    """(N, 1, 28, 28) -> (N, out_features) through two stride-2 convs and an MLP."""

    def __init__(self, out_features: int, channels: int = 32, hidden: int = 256, dropout: float = 0.0):
        super().__init__()
        c = channels
        self.net = nn.Sequential(
            nn.Conv2d(1, c, 3, padding=1), nn.SiLU(),
            nn.Conv2d(c, c, 4, stride=2, padding=1), nn.SiLU(),           # (N, c, 14, 14)
            nn.Conv2d(c, 2 * c, 4, stride=2, padding=1), nn.SiLU(),       # (N, 2c, 7, 7)
            nn.Flatten(),                                                 # (N, 2c*49)
            nn.Dropout(dropout),
            nn.Linear(2 * c * 49, hidden), nn.SiLU(),
            nn.Linear(hidden, out_features),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class ConvDecoder(nn.Module):
    """(N, in_features) -> logits (N, 1, 28, 28); apply sigmoid for pixels in [0, 1]."""

    def __init__(self, in_features: int, channels: int = 32, hidden: int = 256):
        super().__init__()
        c = channels
        self.c = c
        self.fc = nn.Sequential(nn.Linear(in_features, hidden), nn.SiLU(),
                                nn.Linear(hidden, 2 * c * 49), nn.SiLU())
        self.net = nn.Sequential(
            nn.ConvTranspose2d(2 * c, c, 4, stride=2, padding=1), nn.SiLU(),  # (N, c, 14, 14)
            nn.ConvTranspose2d(c, c, 4, stride=2, padding=1), nn.SiLU(),      # (N, c, 28, 28)
            nn.Conv2d(c, 1, 3, padding=1),                                    # (N, 1, 28, 28)
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.fc(z).view(-1, 2 * self.c, 7, 7)  # (N, 2c, 7, 7)
        return self.net(h)
