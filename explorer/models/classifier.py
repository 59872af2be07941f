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
    factor_sizes: tuple = ()  # values per labelled factor: one head each (the face set's factor classifier)
    image_shape: tuple = (1, 28, 28)  # (C, H, W) of the dataset it was built for


class Classifier(ConfigModule):
    Config = ClassifierConfig
    generates = False
    label = "Classifier"

    def __init__(self, config: ClassifierConfig):
        super().__init__(config)
        c = config.channels
        ch, h, w = (int(v) for v in config.image_shape)
        pools = 2 + (h >= 48)  # a third 2x2 pool for 64x64: the flat features stay ~8x8
        extra = [nn.Conv2d(2 * c, 2 * c, 3, padding=1), nn.BatchNorm2d(2 * c), nn.SiLU(), nn.MaxPool2d(2)] \
            if pools == 3 else []
        hw = (h >> pools) * (w >> pools)
        self.body = nn.Sequential(
            nn.Conv2d(ch, c, 3, padding=1), nn.BatchNorm2d(c), nn.SiLU(),
            nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c), nn.SiLU(),
            nn.MaxPool2d(2),                                                    # (N, c, 14, 14)
            nn.Conv2d(c, 2 * c, 3, padding=1), nn.BatchNorm2d(2 * c), nn.SiLU(),
            nn.Conv2d(2 * c, 2 * c, 3, padding=1), nn.BatchNorm2d(2 * c), nn.SiLU(),
            nn.MaxPool2d(2),                                                    # (N, 2c, H/4, W/4)
            *extra,                                                             # (N, 2c, H/8, W/8) for 64x64
            nn.Flatten(), nn.Dropout(config.dropout),
            nn.Linear(2 * c * hw, config.features), nn.SiLU(),                 # penultimate features
        )
        self.head = nn.Sequential(nn.Dropout(config.dropout), nn.Linear(config.features, config.classes))
        # a factor classifier: one more head per labelled factor (the class head judges the class label)
        self.factor_heads = nn.ModuleList(nn.Linear(config.features, k) for k in config.factor_sizes)

    def loss(self, batch):
        x, y = batch[0], batch[1]
        h = self.body(x)
        logits = self.head(h)
        loss = F.cross_entropy(logits, y)
        acc = (logits.argmax(-1) == y).float().mean()
        logs = {"acc": acc.item()}
        if self.factor_heads and len(batch) > 2:  # (x, y, factors (N, F))
            f = batch[2]
            hd = F.dropout(h, self.config.dropout, self.training)
            for j, head in enumerate(self.factor_heads):
                fl = head(hd)
                loss = loss + F.cross_entropy(fl, f[:, j])
            logs["f_acc"] = sum((head(hd).argmax(-1) == f[:, j]).float().mean().item()
                                for j, head in enumerate(self.factor_heads)) / len(self.factor_heads)
        return loss, {"loss": loss.item(), **logs}

    @torch.no_grad()
    def predict_factors(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Per factor head, the probabilities (N, values) of each of its values."""
        h = self.features(x)
        return [F.softmax(head(h), -1) for head in self.factor_heads]

    @torch.no_grad()
    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate activations (N, features) for classifier-FID."""
        return self.body(x.to(next(self.parameters()).device))

    @torch.no_grad()
    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        return F.softmax(self.head(self.features(x)), -1)
