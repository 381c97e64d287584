"""The LR range test behind ``Trainer.find_lr``: sweep the LR up, record the loss, suggest an LR.

Step i trains one optimizer step at ``sweep_lr(i)`` with everything the training params say about
the step (optimizer and its params, loss, param groups, batch_accumulate, mixed precision,
clip_grad_norm), through the loop's own helpers; the LR schedule of the params is not used. Under
torchrun every rank takes the same steps on its shard and the losses are averaged over the ranks.
Afterwards the model, a given optimizer instance and the RNGs are put back as they were.
"""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Iterator, Mapping
from typing import Any

import torch

import schedulers
from callbacks import CallbackList, GradientClipping, Phase, PhaseContext
from callbacks.checkpoint import restore_rng_states, rng_states
from trainer import distributed
from trainer.lr_finder_result import LRFinderResult
from trainer.lr_suggestions import (
    DEFAULT_SUGGESTION,
    SmoothedLoss,
    check_sweep_args,
    suggest,
    sweep_lr,
)
from trainer.params import resolve_training_params, to_plain_dict
from trainer.trainer import _autocast, _optimizer_step, _set_sampler_epoch, _to_device, grad_scaler

MAX_SKIPPED_STEPS = 50
"""Steps in a row the GradScaler may skip (inf/NaN gradients under float16) before the test gives up."""


def find_lr(
    trainer: Any,
    model: torch.nn.Module,
    training_params: Mapping[str, Any],
    train_loader: Any,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    num_iter: int = 100,
    mode: str = "exp",
    smooth_f: float = 0.05,
    diverge_th: float = 5.0,
    progress: bool | None = None,
) -> LRFinderResult:
    """Run the LR range test; ``Trainer.find_lr`` documents the arguments."""
    check_sweep_args(start_lr, end_lr, num_iter, mode, smooth_f, diverge_th)
    plain = to_plain_dict(training_params)
    plain.setdefault("max_epochs", 1)  # the test runs no epochs; train's required key is not needed here
    params = resolve_training_params(plain, extra_known_keys=schedulers.lr_param_names)
    if hasattr(train_loader, "__len__") and len(train_loader) == 0:
        raise ValueError("find_lr: train_loader has no batch; the sweep needs at least one.")
    info = distributed.setup_distributed(trainer.requested_device)
    saved_rng = rng_states()
    saved_model = _ModelState(model)
    given_optimizer = params.optimizer if isinstance(params.optimizer, torch.optim.Optimizer) else None
    saved_optimizer = copy.deepcopy(given_optimizer.state_dict()) if given_optimizer is not None else None
    saved_sampler_epoch = getattr(getattr(train_loader, "sampler", None), "epoch", None)
    try:
        device, net, optimizer, criterion = trainer.build_core(model, params, info)
        distributed.warn_if_not_sharded(train_loader, "train_loader", info)
        net = distributed.wrap_model(net, device, info)
        context = PhaseContext(
            experiment_name=trainer.experiment_name,
            ckpt_dir=trainer.ckpt_dir,
            device=device,
            training_params=params,
            net=net,
            optimizer=optimizer,
            criterion=criterion,
            scaler=grad_scaler(device, params.mixed_precision),
            train_loader=train_loader,
            valid_loader=None,
            max_epochs=1,
            steps_per_epoch=num_iter,
            total_steps=num_iter,
            batch_accumulate=params.batch_accumulate,
            rank=info.rank,
            world_size=info.world_size,
        )
        show = (not params.silent_mode) if progress is None else progress
        curve = _sweep(
            context,
            info,
            [sweep_lr(i, start_lr, end_lr, num_iter, mode) for i in range(num_iter)],
            smooth_f,
            diverge_th,
            show and info.rank == 0,
        )
    finally:
        saved_model.restore(model)
        if given_optimizer is not None:
            given_optimizer.load_state_dict(saved_optimizer)
        if saved_sampler_epoch is not None:
            train_loader.sampler.epoch = saved_sampler_epoch
        restore_rng_states(saved_rng)
        distributed.teardown_distributed(info)
    lrs, raw, smoothed, diverged_at, stop_reason, ratios = curve
    found = suggest(lrs, smoothed, num_iter)
    return LRFinderResult(
        lrs=lrs,
        losses=smoothed,
        raw_losses=raw,
        suggestions=found.lrs,
        suggested_lr=found.lrs.get(DEFAULT_SUGGESTION),
        diverged_at=diverged_at,
        stop_reason=stop_reason,
        message=found.message,
        suggestion_indices=found.indices,
        start_lr=start_lr,
        end_lr=end_lr,
        num_iter=num_iter,
        mode=mode,
        smooth_f=smooth_f,
        diverge_th=diverge_th,
        group_ratios=ratios,
    )


class _ModelState:
    """The weights, buffers, gradients, train/eval mode and device of a model, to put back bitwise."""

    def __init__(self, model: torch.nn.Module):
        self.state = {name: value.detach().clone() for name, value in model.state_dict(keep_vars=True).items()}
        self.grads = [None if p.grad is None else p.grad.detach().clone() for p in model.parameters()]
        self.modes = [module.training for module in model.modules()]
        first = next(iter(self.state.values()), None)
        self.device = first.device if first is not None else None

    def restore(self, model: torch.nn.Module) -> None:
        if self.device is not None:
            model.to(self.device)
        with torch.no_grad():
            model.load_state_dict(self.state)
        for param, grad in zip(model.parameters(), self.grads):
            param.grad = grad
        for module, training in zip(model.modules(), self.modes):
            module.training = training


def _batches(loader: Any) -> Iterator[Any]:
    """The loader's batches, pass after pass (each pass a new sampler epoch)."""
    passes = 0
    while True:
        _set_sampler_epoch(loader, passes)
        empty = True
        for batch in loader:
            empty = False
            yield batch
        if empty:
            raise ValueError("find_lr: train_loader yielded no batch; the sweep needs at least one.")
        passes += 1


def _sweep(context: PhaseContext, info, lrs: list[float], smooth_f: float, diverge_th: float, show: bool):
    """Take one optimizer step per LR until the end, a divergence or a non-finite loss."""
    from tqdm.auto import tqdm

    from callbacks.group_values import param_group_labels

    params, net, optimizer, scaler = context.training_params, context.net, context.optimizer, context.scaler
    top = max(group["initial_lr"] for group in optimizer.param_groups)
    if not top > 0:
        raise ValueError(
            f"find_lr: the param groups' initial_lr are all {top!r}; the sweep scales the largest, so one must be > 0."
        )
    ratios = [group["initial_lr"] / top for group in optimizer.param_groups]
    clipping = CallbackList([GradientClipping(params.clip_grad_norm)] if params.clip_grad_norm else [])
    autocast = _autocast(context.device, params.mixed_precision)
    accumulate = context.batch_accumulate
    total_batches = len(lrs) * accumulate  # every window is whole: the loader cycles
    stream = _batches(context.train_loader)
    taken, raw, smoothed = [], [], []
    smoother, best, skipped = SmoothedLoss(smooth_f), math.inf, 0
    diverged_at, stop_reason = None, f"ran all {len(lrs)} steps"
    net.train()
    optimizer.zero_grad(set_to_none=True)
    bar = tqdm(total=len(lrs), desc="find_lr", unit="step", disable=not show, leave=False)
    micro_batch = 0
    while len(taken) < len(lrs):
        step = len(taken)
        for group, ratio in zip(optimizer.param_groups, ratios):
            group["lr"] = lrs[step] * ratio
        loss_sum = torch.zeros((), device=context.device)
        for _ in range(accumulate):
            context.batch_idx = micro_batch
            context.inputs, context.target = _to_device(next(stream), context.device)
            _, context.closes_step, window = schedulers.accumulation_window(micro_batch, total_batches, accumulate)
            micro_batch += 1
            with autocast:
                context.preds = net(context.inputs)
                context.loss = context.criterion(context.preds, context.target)
            loss_sum += context.loss.detach().float()
            scaled_loss = context.loss / window if window > 1 else context.loss
            skip_sync = info.is_distributed and not context.closes_step
            with net.no_sync() if skip_sync else contextlib.nullcontext():
                scaler.scale(scaled_loss).backward()
        loss_sum = distributed.all_reduce_sum(loss_sum / accumulate, info)
        loss = loss_sum.item() / info.world_size
        if not math.isfinite(loss):
            optimizer.zero_grad(set_to_none=True)
            diverged_at, stop_reason = (
                step,
                f"non-finite loss {loss} at step {step} (lr {lrs[step]:.3g}); step not taken",
            )
            break
        clipping.fire(Phase.TRAIN_BATCH_GRADIENT_STEP_START, context)
        stepped = _optimizer_step(optimizer, scaler)
        optimizer.zero_grad(set_to_none=True)
        if not stepped:  # the GradScaler skipped it (float16 overflow): retry this LR on the next batch
            skipped += 1
            if skipped > MAX_SKIPPED_STEPS:
                raise RuntimeError(f"find_lr: the GradScaler skipped {skipped} steps in a row at lr {lrs[step]:.3g}.")
            continue
        skipped = 0
        value = smoother.update(loss)
        taken.append(lrs[step])
        raw.append(loss)
        smoothed.append(value)
        bar.update(1)
        bar.set_postfix(lr=f"{lrs[step]:.2e}", loss=f"{value:.4g}", refresh=False)
        if value > diverge_th * best:
            diverged_at = step
            stop_reason = f"diverged at step {step} (lr {lrs[step]:.3g}): smoothed loss {value:.4g} > {diverge_th} x best {best:.4g}"
            break
        best = min(best, value)
    bar.close()
    labels = param_group_labels(optimizer.param_groups)
    return taken, raw, smoothed, diverged_at, stop_reason, dict(zip(labels, ratios))
