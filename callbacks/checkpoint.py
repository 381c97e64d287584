"""Checkpoint files: atomic writes, safe loads, and the callback that saves them."""

from __future__ import annotations

import os
import random
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np
import torch

from callbacks.base import Callback
from callbacks.context import PhaseContext
from callbacks.errors import CheckpointWriteError, NonFiniteWeightsError

REQUIRED_KEYS = ("net", "optimizer_state_dict", "epoch", "global_step")


def atomic_save(obj: Any, path: str | os.PathLike) -> None:
    """Write ``obj`` with torch.save so that ``path`` is never seen half-written.

    The data goes to a temporary file in the same directory, is flushed and fsynced, then renamed
    over ``path``; a process killed at any moment leaves either the old or the new file.

    Raises:
        CheckpointWriteError: an ``OSError`` while writing (no space left, file too large, ...); the
            previous file at ``path`` is unchanged and the temporary file is removed. The message
            names the path and the cause.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as handle:
            torch.save(obj, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except Exception as raised:
        error = _os_error_in(raised)
        if error is None:
            raise
        cause = f"{type(error).__name__}: {error.strerror or error}"
        failure = CheckpointWriteError(
            f"checkpoint: writing {str(path)!r} failed ({cause}); the previous file there is unchanged and the "
            "temporary file was removed."
        )
        failure.errno = error.errno
        raise failure from error
    finally:
        if tmp.exists():
            tmp.unlink()
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def _os_error_in(error: BaseException) -> OSError | None:
    """``error`` or the exception it was raised during, when it is an OSError. torch.save's zip writer
    turns a failed write into a RuntimeError ("unexpected pos") raised while handling the OSError."""
    seen = 0
    while error is not None and seen < 8:
        if isinstance(error, OSError):
            return error
        error, seen = error.__cause__ or error.__context__, seen + 1
    return None


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """Load a phasetrain checkpoint with ``weights_only=True`` (never runs pickled code).

    Raises:
        FileNotFoundError: no file at ``path``.
        RuntimeError: the file is corrupt, not loadable safely, or lacks required keys.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"resume: checkpoint {str(path)!r} does not exist; nothing to resume from.")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:
        raise RuntimeError(
            f"resume: checkpoint {str(path)!r} is corrupt or not a phasetrain checkpoint "
            f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''})."
        ) from error
    if not isinstance(checkpoint, dict):
        raise RuntimeError(f"resume: checkpoint {str(path)!r} holds a {type(checkpoint).__name__}, not a dict.")
    missing = [key for key in REQUIRED_KEYS if key not in checkpoint]
    if missing:
        raise RuntimeError(
            f"resume: checkpoint {str(path)!r} lacks {missing}; it was not written by phasetrain "
            f"(keys found: {sorted(checkpoint)})."
        )
    return checkpoint


def rng_states() -> dict[str, Any]:
    """The RNG states of torch (CPU and CUDA), Python and NumPy, in weights_only-loadable types."""
    _, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    states = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": {
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "position": int(position),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached_gaussian),
        },
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: dict[str, Any]) -> None:
    """Restore what ``rng_states`` returned."""
    torch.set_rng_state(states["torch"])
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    numpy_state = states["numpy"]
    np.random.set_state(
        (
            "MT19937",
            numpy_state["keys"].numpy().astype(np.uint32),
            numpy_state["position"],
            numpy_state["has_gauss"],
            numpy_state["cached_gaussian"],
        )
    )
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def unwrap_model(net: torch.nn.Module) -> torch.nn.Module:
    """The model inside a DistributedDataParallel/DataParallel wrapper (or the model itself)."""
    return getattr(net, "module", net) if isinstance(net, _WRAPPERS) else net


_WRAPPERS = (torch.nn.parallel.DistributedDataParallel, torch.nn.DataParallel)


def build_checkpoint(context: PhaseContext, stateful_callbacks: list[Callback]) -> dict[str, Any]:
    """Everything needed to resume after the current epoch, as weights_only-loadable data."""
    checkpoint: dict[str, Any] = {
        "net": unwrap_model(context.net).state_dict(),
        "optimizer_state_dict": context.optimizer.state_dict(),
        "epoch": context.epoch + 1,
        "global_step": context.global_step,
        "train_metrics": dict(context.train_metrics),
        "valid_metrics": dict(context.valid_metrics) if context.validates_this_epoch else {},
        "metric_to_watch": context.metric_to_watch,
        "best_metric": context.best_metric,
        "scaler_state_dict": context.scaler.state_dict(),
        "rng_states": rng_states(),
        "training_params": plain_params(context.training_params),
    }
    for callback in stateful_callbacks:
        checkpoint[callback.checkpoint_key] = callback.state_dict()
    return checkpoint


def plain_params(training_params: Any) -> dict[str, Any]:
    """The training params as plain data (objects replaced by their repr), for the record."""
    from omegaconf import OmegaConf

    container = (
        OmegaConf.to_container(training_params, resolve=True)
        if OmegaConf.is_config(training_params)
        else training_params
    )
    return _plain(container)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, Enum):  # Phase is a str Enum; weights_only loads refuse Enum objects
        return value.name
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, type):
        return f"{value.__module__}.{value.__qualname__}"
    return repr(value)


def check_finite_weights(net: torch.nn.Module, path: str | os.PathLike, epoch: int) -> None:
    """Refuse to save weights holding NaN or inf: checked before any checkpoint file is replaced.

    One host-device sync for the whole model (the per-tensor checks are stacked on the device).

    Raises:
        NonFiniteWeightsError: names the first non-finite tensor and the checkpoint kept on disk.
    """
    state = unwrap_model(net).state_dict()
    names = [name for name, value in state.items() if torch.is_floating_point(value)]
    if not names:
        return
    finite = torch.stack([torch.isfinite(state[name]).all() for name in names])
    if bool(finite.all()):
        return
    bad = names[int((~finite).nonzero()[0])]
    raise NonFiniteWeightsError(
        f"checkpoint: after epoch {epoch} the weights hold NaN or inf (first: {bad!r}); refusing to write them over "
        f"{str(path)!r}, which still holds the last checkpoint with finite weights."
    )


class CheckpointSaver(Callback):
    """Writes ``ckpt_latest.pth`` after every epoch (after validation when it runs),
    ``ckpt_best.pth`` when metric_to_watch improves, and ``ckpt_epoch_{N}.pth`` for the epoch
    indices N in ``save_ckpt_epoch_list``. Only rank 0 writes; every rank waits for the write.
    Weights holding NaN or inf are never written: ``NonFiniteWeightsError`` instead, files unchanged.

    Args:
        ckpt_dir: the run directory.
        stateful_callbacks: callbacks whose ``state_dict`` goes into every checkpoint.
        ckpt_name: file name of the latest checkpoint.
        ckpt_best_name: file name of the best checkpoint.
        save_ckpt_epoch_list: epoch indices (from 0) that get a checkpoint of their own.
    """

    def __init__(
        self,
        ckpt_dir: str,
        stateful_callbacks: list[Callback],
        ckpt_name: str = "ckpt_latest.pth",
        ckpt_best_name: str = "ckpt_best.pth",
        save_ckpt_epoch_list: list[int] | None = None,
    ):
        self.ckpt_dir = Path(ckpt_dir)
        self.stateful_callbacks = stateful_callbacks
        self.ckpt_name = ckpt_name
        self.ckpt_best_name = ckpt_best_name
        self.save_ckpt_epoch_list = set(save_ckpt_epoch_list or [])
        self._latest: dict[str, Any] | None = None

    def on_train_loader_end(self, context: PhaseContext) -> None:
        if not context.validates_this_epoch:
            self._save_epoch_end(context)

    def on_validation_loader_end(self, context: PhaseContext) -> None:
        self._save_epoch_end(context)

    def on_validation_end_best_epoch(self, context: PhaseContext) -> None:
        self._write(context, self.ckpt_best_name, self._latest)

    def _save_epoch_end(self, context: PhaseContext) -> None:
        # Every rank checks (the weights are the same on all), so all of them stop together.
        check_finite_weights(context.net, self.ckpt_dir / self.ckpt_name, context.epoch)
        self._latest = build_checkpoint(context, self.stateful_callbacks) if context.is_rank_zero else None
        self._write(context, self.ckpt_name, self._latest)
        if context.epoch in self.save_ckpt_epoch_list:
            self._write(context, f"ckpt_epoch_{context.epoch}.pth", self._latest)

    def _write(self, context: PhaseContext, name: str, checkpoint: dict[str, Any] | None) -> None:
        if context.is_rank_zero:
            atomic_save(checkpoint, self.ckpt_dir / name)
        if context.world_size > 1:
            torch.distributed.barrier()
