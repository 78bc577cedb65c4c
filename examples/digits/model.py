"""A small CNN for scikit-learn's 8x8 handwritten digits (inputs (N, 1, 8, 8) scaled to [0, 1])."""

from __future__ import annotations

import torch
from torch import nn


class SmallCNN(nn.Module):
    def __init__(self, n_classes: int = 10, width: int = 16):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),  # 8x8 -> 4x4
            nn.Conv2d(2 * width, 2 * width, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),  # 4x4 -> 2x2
        )
        self.embed = nn.Sequential(nn.Flatten(), nn.Linear(2 * width * 4, 64), nn.ReLU())
        self.classifier = nn.Linear(64, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(self.features(x)))


def build(n_classes: int = 10, width: int = 16) -> SmallCNN:
    return SmallCNN(n_classes=n_classes, width=width)
