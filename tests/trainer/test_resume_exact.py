"""Resume: bitwise-exact continuation, resume_path, best metric after resume, clear errors."""

from __future__ import annotations

import pytest
import torch
from tiny_fixtures import ScriptedScore, base_params, tiny_loader, tiny_mlp

from callbacks import Callback, load_checkpoint
from trainer import Trainer


class LossRecorder(Callback):
    """Records loss.item() of every train batch (fine in a test) and stops after ``stop_after`` epochs."""

    def __init__(self, stop_after: int | None = None):
        self.stop_after = stop_after
        self.losses: list[float] = []

    def on_train_batch_end(self, context):
        self.losses.append(context.loss.item())

    def on_train_loader_end(self, context):
        if self.stop_after is not None and context.epoch + 1 == self.stop_after:
            context.stop_training = True


def _run(tmp_path, name, max_epochs, recorder, dropout=0.0, **overrides):
    settings = {"optimizer": "Adam", "initial_lr": 0.01, "seed": 7, **overrides}
    params = base_params(max_epochs=max_epochs, phase_callbacks=[recorder], **settings)
    net = torch.nn.Sequential(tiny_mlp(seed=3), torch.nn.Dropout(dropout))  # dropout draws from the global RNG
    # A fresh shuffled loader per run: its order comes from the global RNG, which the trainer seeds/restores.
    result = Trainer(name, ckpt_root_dir=str(tmp_path)).train(
        net, params, tiny_loader(4, shuffle=True), tiny_loader(2, seed=1)
    )
    return net, result


def _assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    a_state, b_state = a.state_dict(), b.state_dict()
    assert a_state.keys() == b_state.keys()
    for key in a_state:
        assert torch.equal(a_state[key], b_state[key]), key


@pytest.mark.parametrize(
    ("settings", "total_steps"),
    [
        ({}, 16),
        # Epoch 1 (where the first run stops) is not validated; 4 batches in windows of 3 and 1.
        ({"run_validation_freq": 3, "batch_accumulate": 3, "dropout": 0.3, "optimizer": "SGD"}, 8),
    ],
)
def test_stopped_and_resumed_run_is_bitwise_identical(tmp_path, settings, total_steps):
    if settings.get("optimizer") == "SGD":
        settings = {**settings, "optimizer_params": {"momentum": 0.9}}
    full_losses = LossRecorder()
    full_net, full_result = _run(tmp_path, "full", 4, full_losses, **settings)

    first_half = LossRecorder(stop_after=2)
    _, stopped = _run(tmp_path, "split", 4, first_half, **settings)
    assert (stopped.epochs_run, stopped.next_epoch) == (2, 2)
    second_half = LossRecorder()
    resumed_net, resumed = _run(tmp_path, "split", 4, second_half, resume=True, **settings)

    assert (resumed.epochs_run, resumed.next_epoch, resumed.global_step) == (2, 4, total_steps)
    assert len(full_losses.losses) == 16
    assert first_half.losses + second_half.losses == full_losses.losses
    _assert_same_weights(resumed_net, full_net)
    assert resumed.valid_metrics == full_result.valid_metrics
    assert resumed.best_metric == full_result.best_metric


def test_without_restored_rng_the_order_would_differ(tmp_path):
    """The exact-resume test can fail: a resumed run that reshuffles from the seed is not identical."""
    full_losses = LossRecorder()
    _run(tmp_path, "full", 4, full_losses)
    fresh = LossRecorder()
    _run(tmp_path, "fresh", 2, fresh)  # epochs 0-1 from the seed: equal to the full run's start
    assert fresh.losses == full_losses.losses[:8]
    other_seed = LossRecorder()
    _run(tmp_path, "other", 2, other_seed, seed=8)
    assert other_seed.losses != full_losses.losses[:8]


def test_resume_path_continues_into_this_experiment(tmp_path):
    full_net, _ = _run(tmp_path, "full", 4, LossRecorder())
    _run(tmp_path, "source", 2, LossRecorder())
    source_path = tmp_path / "source" / "ckpt_latest.pth"
    resumed_net, resumed = _run(tmp_path, "target", 4, LossRecorder(), resume_path=str(source_path))
    _assert_same_weights(resumed_net, full_net)
    assert resumed.ckpt_dir == str(tmp_path / "target")
    assert load_checkpoint(tmp_path / "target" / "ckpt_latest.pth")["epoch"] == 4
    assert load_checkpoint(source_path)["epoch"] == 2  # the source is left alone


def _scored_run(tmp_path, max_epochs, values, **overrides):
    params = base_params(
        max_epochs=max_epochs, valid_metrics_list=[ScriptedScore(values)], metric_to_watch="ScriptedScore", **overrides
    )
    return Trainer("scored", ckpt_root_dir=str(tmp_path)).train(tiny_mlp(), params, tiny_loader(3), tiny_loader(2))


def test_best_metric_is_restored_and_ckpt_best_only_moves_on_improvement(tmp_path):
    best_path = tmp_path / "scored" / "ckpt_best.pth"
    first = _scored_run(tmp_path, 2, [0.5, 0.75])
    assert first.best_metric == 0.75
    assert load_checkpoint(best_path)["epoch"] == 2
    best_mtime = best_path.stat().st_mtime_ns

    # After the resume 0.625 (epoch 2) is worse than the restored 0.75: ckpt_best stays.
    second = _scored_run(tmp_path, 3, [0.625], resume=True)
    assert second.best_metric == 0.75
    assert best_path.stat().st_mtime_ns == best_mtime
    assert load_checkpoint(best_path)["epoch"] == 2
    assert load_checkpoint(tmp_path / "scored" / "ckpt_latest.pth")["best_metric"] == 0.75

    # 0.875 (epoch 3) improves on it: ckpt_best moves.
    third = _scored_run(tmp_path, 4, [0.875], resume=True)
    assert third.best_metric == 0.875
    best = load_checkpoint(best_path)
    assert (best["epoch"], best["best_metric"]) == (4, 0.875)


def test_resume_without_checkpoint_is_an_error(tmp_path):
    with pytest.raises(
        FileNotFoundError, match=r"resume: checkpoint '.*nothing_here.*ckpt_latest\.pth' does not exist"
    ):
        _run(tmp_path, "nothing_here", 2, LossRecorder(), resume=True)
    assert not (tmp_path / "nothing_here").exists()  # nothing was trained or written
    with pytest.raises(FileNotFoundError, match=r"resume: checkpoint '.*missing\.pth' does not exist"):
        _run(tmp_path, "other", 2, LossRecorder(), resume_path=str(tmp_path / "missing.pth"))


def test_resume_from_corrupt_checkpoint_is_an_error(tmp_path):
    _run(tmp_path, "corrupt", 2, LossRecorder())
    path = tmp_path / "corrupt" / "ckpt_latest.pth"
    path.write_bytes(path.read_bytes()[:100])
    recorder = LossRecorder()
    with pytest.raises(RuntimeError, match=r"resume: checkpoint '.*ckpt_latest\.pth' is corrupt or not a phasetrain"):
        _run(tmp_path, "corrupt", 4, recorder, resume=True)
    assert recorder.losses == []
    torch.save({"net": {}}, path)
    with pytest.raises(RuntimeError, match=r"lacks \['optimizer_state_dict', 'epoch', 'global_step'\]"):
        _run(tmp_path, "corrupt", 4, recorder, resume=True)


def test_resume_into_a_different_model_is_an_error(tmp_path):
    _run(tmp_path, "shape", 1, LossRecorder())
    params = base_params(max_epochs=2, resume=True)
    with pytest.raises(RuntimeError, match=r"resume: the weights in '.*ckpt_latest\.pth' do not fit the model"):
        Trainer("shape", ckpt_root_dir=str(tmp_path)).train(tiny_mlp(hidden=5), params, tiny_loader(4))


class InterruptAt(LossRecorder):
    """Raises KeyboardInterrupt (as Ctrl-C would) at TRAIN_BATCH_END of (epoch, batch_idx)."""

    def __init__(self, epoch: int, batch_idx: int):
        super().__init__()
        self.at = (epoch, batch_idx)

    def on_train_batch_end(self, context):
        super().on_train_batch_end(context)
        if (context.epoch, context.batch_idx) == self.at:
            raise KeyboardInterrupt


def test_ctrl_c_mid_epoch_then_resume_is_bitwise_identical(tmp_path):
    full_losses = LossRecorder()
    full_net, _ = _run(tmp_path, "full", 4, full_losses)
    interrupted = InterruptAt(epoch=2, batch_idx=1)
    _, first = _run(tmp_path, "ctrl_c", 4, interrupted)
    assert first.interrupted and first.next_epoch == 2
    assert interrupted.losses == full_losses.losses[:10]  # 2 epochs of 4 batches, then 2 batches of epoch 2
    rest = LossRecorder()
    resumed_net, resumed = _run(tmp_path, "ctrl_c", 4, rest, resume=True)
    assert rest.losses == full_losses.losses[8:]  # epoch 2 runs again from its start
    assert (resumed.epochs_run, resumed.global_step) == (2, 16)
    _assert_same_weights(resumed_net, full_net)
