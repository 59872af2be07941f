"""The in-project classifier: its penultimate features give classifier-FID."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from .base import ConfigModule


@dataclass
class ClassifierConfig:
    classes: int = 10
    channels: int = 16
    features: int = 128
    dropout: float = 0.3


class Classifier(ConfigModule):
    Config = ClassifierConfig
    generates = False

    def __init__(self, config: ClassifierConfig):
        super().__init__(config)
        c = config.channels
        self.body = nn.Sequential(
            nn.Conv2d(1, c, 3, padding=1), nn.BatchNorm2d(c), nn.SiLU(),
            nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c), nn.SiLU(),
            nn.MaxPool2d(2),                                                    # (N, c, 14, 14)
            nn.Conv2d(c, 2 * c, 3, padding=1), nn.BatchNorm2d(2 * c), nn.SiLU(),
            nn.Conv2d(2 * c, 2 * c, 3, padding=1), nn.BatchNorm2d(2 * c), nn.SiLU(),
            nn.MaxPool2d(2),                                                    # (N, 2c, 7, 7)
            nn.Flatten(), nn.Dropout(config.dropout),
            nn.Linear(2 * c * 49, config.features), nn.SiLU(),                 # penultimate features
        )
        self.head = nn.Sequential(nn.Dropout(config.dropout), nn.Linear(config.features, config.classes))

    def loss(self, batch):
        x, y = batch
        logits = self.head(self.body(x))
        loss = F.cross_entropy(logits, y)
        acc = (logits.argmax(-1) == y).float().mean()
        return loss, {"loss": loss.item(), "acc": acc.item()}

    @torch.no_grad()
    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate activations (N, features) for classifier-FID."""
        return self.body(x.to(next(self.parameters()).device))

    @torch.no_grad()
    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        return F.softmax(self.head(self.features(x)), -1)
