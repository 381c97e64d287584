"""Built-in models for 8x8 inputs (the digits data set) and flat feature vectors."""

from __future__ import annotations

import torch
from torch import nn

from registry import register_model


@register_model
class SmallMLP(nn.Module):
    """A two-layer perceptron.

    Args:
        in_features: size of the flat input (64 for 8x8 digits).
        hidden: width of the hidden layer.
        num_classes: number of outputs.
    """

    def __init__(self, in_features: int = 64, hidden: int = 64, num_classes: int = 10):
        super().__init__()
        self.net = nn.Sequential(
            nn.Flatten(), nn.Linear(in_features, hidden), nn.ReLU(), nn.Linear(hidden, num_classes)
        )

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.net(inputs)


@register_model
class SmallCNN(nn.Module):
    """A small convolutional network for 1x8x8 images.

    Args:
        num_classes: number of outputs.
        channels: channels of the first convolution (the second has twice as many).
    """

    def __init__(self, num_classes: int = 10, channels: int = 16):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, channels, 3, padding=1),
            nn.BatchNorm2d(channels),
            nn.ReLU(),
            nn.Conv2d(channels, 2 * channels, 3, padding=1),
            nn.BatchNorm2d(2 * channels),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.1), nn.Linear(2 * channels * 16, num_classes))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        if inputs.dim() == 3:
            inputs = inputs.unsqueeze(1)
        return self.head(self.features(inputs))
