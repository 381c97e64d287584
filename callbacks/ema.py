"""An exponential moving average of the weights (SuperGradients' ``ema``, timm's ``ModelEma``)."""

from __future__ import annotations

import copy
import math
from typing import Any

import torch

from callbacks.base import Callback
from callbacks.checkpoint import unwrap_model
from callbacks.context import PhaseContext

EMA_DECAY_TYPES = ("constant", "threshold", "exp")
"""The names of ``ema_params.decay_type``."""


def ema_decay(decay: float, decay_type: str, beta: float, update: int) -> float:
    """The factor d of update number ``update`` (counted from 1).

    ``constant``: ``decay``; ``threshold``: ``min(decay, (1 + n) / (10 + n))``; ``exp``:
    ``decay * (1 - exp(-n / beta))``.
    """
    if decay_type == "constant":
        return decay
    if decay_type == "threshold":
        return min(decay, (1 + update) / (10 + update))
    return decay * (1 - math.exp(-update / beta))


def _seen(tensor: torch.Tensor, storages: set[int]) -> bool:
    pointer = tensor.untyped_storage().data_ptr() + tensor.storage_offset() * tensor.element_size()
    if tensor.numel() and pointer in storages:
        return True
    storages.add(pointer)
    return False


class ModelEMA(Callback):
    """Keeps ``ema = d * ema + (1 - d) * w`` over the parameters and floating buffers of the net.

    The average starts from the net's weights when the callback is built (the run's initial weights)
    and is updated at ``TRAIN_BATCH_STEP``, which fires after every optimizer step that happened
    (never after a step the GradScaler skipped), with update number n = ``context.global_step``.
    Non-floating buffers (BatchNorm's ``num_batches_tracked``) are copied. The update is one fused
    ``torch._foreach_lerp_`` over all floating tensors (``lerp(ema, w, 1 - d)`` is ``d*ema + (1-d)*w``).

    Validation and test batches run on the EMA weights: they are copied into the net at
    ``VALIDATION_EPOCH_START``/``TEST_START`` and the net's own weights copied back at
    ``VALIDATION_EPOCH_END``/``TEST_END``, before the checkpoint is written, so training continues on
    the raw weights bitwise. Checkpoints hold the raw weights as ``net`` and the average as
    ``ema_net`` (this callback's ``checkpoint_key``): a plain state dict of the model.

    Args:
        net: the model (unwrapped from DistributedDataParallel here).
        decay: in (0, 1).
        decay_type: one of ``EMA_DECAY_TYPES``.
        beta: the ``exp`` type's time constant, in updates.
    """

    checkpoint_key = "ema_net"

    def __init__(self, net: torch.nn.Module, decay: float = 0.9999, decay_type: str = "exp", beta: float = 15.0):
        self.decay, self.decay_type, self.beta = decay, decay_type, beta
        self.net = unwrap_model(net)
        self.ema_net = copy.deepcopy(self.net).eval().requires_grad_(False)
        # state_dict() tensors share storage with the modules' parameters and buffers; the lists are
        # built once, so each update is a single fused call.
        net_state, ema_state = self.net.state_dict(), self.ema_net.state_dict()
        # A tied weight appears under several keys; it is averaged once.
        storages: set[int] = set()
        unique = [key for key, value in net_state.items() if not _seen(value, storages)]
        floating = [key for key in unique if net_state[key].is_floating_point()]
        others = [key for key in unique if key not in floating]
        self._net_floats = [net_state[key] for key in floating]
        self._ema_floats = [ema_state[key] for key in floating]
        self._net_others = [net_state[key] for key in others]
        self._ema_others = [ema_state[key] for key in others]
        self._raw_backup: list[torch.Tensor] | None = None
        self._swapped = False

    def decay_of(self, update: int) -> float:
        """d for update number ``update`` (from 1)."""
        return ema_decay(self.decay, self.decay_type, self.beta, update)

    def on_train_batch_gradient_step_end(self, context: PhaseContext) -> None:
        self.update(context.global_step)

    @torch.no_grad()
    def update(self, update: int) -> None:
        """Fold the net's current weights into the average as update number ``update``."""
        weight = 1.0 - self.decay_of(update)
        torch._foreach_lerp_(self._ema_floats, self._net_floats, weight)
        if self._net_others:
            torch._foreach_copy_(self._ema_others, self._net_others)

    def on_train_loader_end(self, context: PhaseContext) -> None:
        if context.world_size > 1:
            # Parameters agree on every rank (DDP all-reduces the gradients); buffers are each rank's own,
            # so rank 0's averaged buffers are sent to all.
            for tensor in self._ema_floats + self._ema_others:
                torch.distributed.broadcast(tensor, src=0)

    def on_validation_loader_start(self, context: PhaseContext) -> None:
        self._swap_in()

    def on_validation_loader_end(self, context: PhaseContext) -> None:
        self._swap_out()

    def on_test_loader_start(self, context: PhaseContext) -> None:
        self._swap_in()

    def on_test_loader_end(self, context: PhaseContext) -> None:
        self._swap_out()

    def on_training_end(self, context: PhaseContext) -> None:
        self._swap_out()  # an exception inside validation must not leave the EMA weights in the net

    @torch.no_grad()
    def _swap_in(self) -> None:
        if self._swapped:
            return
        if self._raw_backup is None:
            self._raw_backup = [torch.empty_like(tensor) for tensor in self._net_floats]
        torch._foreach_copy_(self._raw_backup, self._net_floats)
        torch._foreach_copy_(self._net_floats, self._ema_floats)
        self._swapped = True

    @torch.no_grad()
    def _swap_out(self) -> None:
        if self._swapped:
            torch._foreach_copy_(self._net_floats, self._raw_backup)
            self._swapped = False

    def state_dict(self) -> dict[str, Any]:
        """The EMA model's state dict (loadable into the model with ``load_state_dict``)."""
        return self.ema_net.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.ema_net.load_state_dict(state)
