"""Gradient clipping as a callback."""

from __future__ import annotations

import torch

from callbacks.base import Callback
from callbacks.context import PhaseContext


class GradientClipping(Callback):
    """Clips the gradient norm of all parameters right before each optimizer step.

    With a GradScaler the gradients are unscaled first, so ``max_norm`` applies to the true
    gradients. The norm stays on the device (no host-device sync).

    Args:
        max_norm: the largest allowed total gradient norm (``clip_grad_norm``).
    """

    def __init__(self, max_norm: float):
        self.max_norm = max_norm

    def on_train_batch_gradient_step_start(self, context: PhaseContext) -> None:
        if context.scaler.is_enabled():
            context.scaler.unscale_(context.optimizer)
        torch.nn.utils.clip_grad_norm_(context.net.parameters(), self.max_norm)
