"""Loop features on tiny real runs: accumulation, clipping, autocast, batch limits, validation
frequency, metrics, test loaders, seeding, and the dispatcher."""

from __future__ import annotations

import copy
import math
import re

import pytest
import torch
from tiny_fixtures import base_params, tiny_dataset, tiny_loader, tiny_mlp
from torch.utils.data import DataLoader, TensorDataset

from callbacks import Callback, CallbackList, Phase, PhaseCallback
from registry import register_lr_scheduler
from schedulers import LRCallbackBase
from trainer import Trainer

ACCURACY = {"Accuracy": {"task": "multiclass", "num_classes": 3}}


def _train(tmp_path, net=None, train_loader=None, valid_loader=None, name="run", **overrides):
    return Trainer(name, ckpt_root_dir=str(tmp_path)).train(
        net if net is not None else tiny_mlp(),
        base_params(**overrides),
        train_loader if train_loader is not None else tiny_loader(3),
        valid_loader,
    )


class WindowGradients(Callback):
    """Checks, at every optimizer step, that the accumulated gradient equals the big-batch gradient."""

    def __init__(self):
        self.window: list[tuple[torch.Tensor, torch.Tensor, int]] = []
        self.windows: list[list[int]] = []
        self.steps: list[int] = []
        self.max_difference = 0.0

    def on_train_batch_start(self, context):
        if context.opens_step:
            self.window = []
        self.window.append((context.inputs, context.target, context.batch_idx))

    def on_train_batch_gradient_step_start(self, context):
        self.windows.append([batch_idx for _, _, batch_idx in self.window])
        reference = copy.deepcopy(context.net)  # the weights before this step
        reference.zero_grad(set_to_none=True)
        inputs = torch.cat([inputs for inputs, _, _ in self.window])
        target = torch.cat([target for _, target, _ in self.window])
        torch.nn.functional.mse_loss(reference(inputs), target).backward()
        for accumulated, expected in zip(context.net.parameters(), reference.parameters()):
            self.max_difference = max(self.max_difference, (accumulated.grad - expected.grad).abs().max().item())

    def on_train_batch_gradient_step_end(self, context):
        self.steps.append(context.global_step)


def test_batch_accumulate_counts_optimizer_steps_and_matches_the_big_batch(tmp_path):
    generator = torch.Generator().manual_seed(0)
    data = TensorDataset(torch.randn(28, 4, generator=generator), torch.randn(28, 1, generator=generator))
    checker = WindowGradients()
    seen = []

    class Clock(PhaseCallback):
        def __call__(self, context):
            seen.append((context.steps_per_epoch, context.total_steps, context.batch_accumulate))

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        net = torch.nn.Linear(4, 1)
    result = _train(
        tmp_path,
        net=net,
        train_loader=DataLoader(data, batch_size=4),
        max_epochs=2,
        loss="MSELoss",
        batch_accumulate=3,
        phase_callbacks=[checker, Clock("PRE_TRAINING")],
    )
    assert seen == [(3, 6, 3)]
    assert checker.windows == [[0, 1, 2], [3, 4, 5], [6]] * 2
    assert checker.steps == [1, 2, 3, 4, 5, 6]
    assert result.global_step == 6
    assert checker.max_difference < 1e-6


class GradientNorms(Callback):
    """Total gradient norm after backward (before clipping) and at the step (after clipping)."""

    def __init__(self):
        self.before: list[float] = []
        self.after: list[float] = []

    @staticmethod
    def _norm(net) -> float:
        return torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in net.parameters()])).item()

    def on_train_batch_backward_end(self, context):
        self.before.append(self._norm(context.net))

    def on_train_batch_gradient_step_start(self, context):
        self.after.append(self._norm(context.net))


def test_clip_grad_norm_clips_before_user_callbacks_see_the_step(tmp_path):
    norms = GradientNorms()
    _train(tmp_path, max_epochs=1, clip_grad_norm=0.01, phase_callbacks=[norms])
    assert len(norms.before) == len(norms.after) == 3
    assert all(norm > 0.05 for norm in norms.before)
    assert norms.after == pytest.approx([0.01] * 3, abs=1e-5)
    unclipped = GradientNorms()
    _train(tmp_path, name="unclipped", max_epochs=1, phase_callbacks=[unclipped])
    assert unclipped.after == unclipped.before


class Dtypes(Callback):
    def __init__(self):
        self.train: set[torch.dtype] = set()
        self.valid: set[torch.dtype] = set()
        self.scaler_enabled: list[bool] = []

    def on_train_batch_loss_end(self, context):
        self.train.add(context.preds.dtype)
        self.scaler_enabled.append(context.scaler.is_enabled())

    def on_validation_batch_end(self, context):
        self.valid.add(context.preds.dtype)


@pytest.mark.parametrize(("mixed_precision", "dtype"), [(True, torch.bfloat16), (False, torch.float32)])
def test_mixed_precision_on_cpu_uses_bfloat16_autocast(tmp_path, mixed_precision, dtype):
    net = tiny_mlp()
    before = copy.deepcopy(net.state_dict())
    dtypes = Dtypes()
    result = _train(
        tmp_path,
        net=net,
        valid_loader=tiny_loader(2),
        max_epochs=2,
        mixed_precision=mixed_precision,
        phase_callbacks=[dtypes],
    )
    assert dtypes.train == dtypes.valid == {dtype}
    assert dtypes.scaler_enabled == [False] * 6  # no GradScaler on the CPU
    assert all(param.dtype == torch.float32 for param in net.parameters())
    assert not torch.equal(net.state_dict()["0.weight"], before["0.weight"])
    assert math.isfinite(result.train_metrics["loss"]) and math.isfinite(result.valid_metrics["loss"])


class Batches(Callback):
    def __init__(self):
        self.train: list[tuple[int, int]] = []
        self.valid: list[tuple[int, int]] = []
        self.losses: list[float] = []
        self.validates: list[bool] = []
        self.clock: list[tuple[int, int]] = []

    def on_training_start(self, context):
        self.clock.append((context.steps_per_epoch, context.total_steps))

    def on_train_loader_start(self, context):
        self.validates.append(context.validates_this_epoch)

    def on_train_batch_end(self, context):
        self.train.append((context.epoch, context.batch_idx))
        self.losses.append(context.loss.item())

    def on_validation_batch_end(self, context):
        self.valid.append((context.epoch, context.batch_idx))


def test_max_train_and_valid_batches(tmp_path):
    batches = Batches()
    result = _train(
        tmp_path,
        train_loader=tiny_loader(5),
        valid_loader=tiny_loader(3, seed=1),
        max_epochs=2,
        max_train_batches=2,
        max_valid_batches=1,
        phase_callbacks=[batches],
    )
    assert batches.train == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert batches.valid == [(0, 0), (1, 0)]
    assert batches.clock == [(2, 4)]
    assert result.global_step == 4
    assert result.train_metrics["loss"] == pytest.approx(sum(batches.losses[2:]) / 2, rel=1e-6)


def test_run_validation_freq_validates_every_n_epochs_and_after_the_last(tmp_path):
    batches = Batches()
    _train(tmp_path, valid_loader=tiny_loader(1), max_epochs=5, run_validation_freq=2, phase_callbacks=[batches])
    assert [epoch for epoch, _ in batches.valid] == [1, 3, 4]
    assert batches.validates == [False, True, False, True, True]


def test_no_valid_loader_never_validates(tmp_path):
    batches = Batches()
    result = _train(tmp_path, max_epochs=2, phase_callbacks=[batches])
    assert batches.valid == [] and batches.validates == [False, False]
    assert (result.valid_metrics, result.best_metric) == ({}, None)


class Predictions(Callback):
    """Collects (argmax prediction == target) of each train batch of the last epoch."""

    def __init__(self):
        self.correct: list[torch.Tensor] = []

    def on_train_loader_start(self, context):
        self.correct = []

    def on_train_batch_end(self, context):
        self.correct.append(context.preds.argmax(dim=1) == context.target)


def _evaluate(net, loader) -> dict[str, float]:
    """Mean batch loss and accuracy of ``net`` on ``loader``, computed by hand."""
    net.eval()
    losses, correct, total = [], 0, 0
    with torch.no_grad():
        for inputs, target in loader:
            preds = net(inputs)
            losses.append(torch.nn.functional.cross_entropy(preds, target).item())
            correct += (preds.argmax(dim=1) == target).sum().item()
            total += len(target)
    return {"loss": sum(losses) / len(losses), "Accuracy": correct / total}


def test_train_and_valid_metrics_with_torchmetrics(tmp_path):
    net = tiny_mlp()
    predictions = Predictions()
    valid_loader = tiny_loader(2, seed=1)
    result = _train(
        tmp_path,
        net=net,
        valid_loader=valid_loader,
        max_epochs=2,
        train_metrics_list=[ACCURACY],
        valid_metrics_list=[ACCURACY],
        metric_to_watch="Accuracy",
        phase_callbacks=[predictions],
    )
    assert list(result.train_metrics) == ["loss", "Accuracy"]
    assert list(result.valid_metrics) == ["loss", "Accuracy"]
    train_accuracy = torch.cat(predictions.correct).float().mean().item()
    assert result.train_metrics["Accuracy"] == pytest.approx(train_accuracy, abs=1e-6)
    expected = _evaluate(net, valid_loader)
    assert result.valid_metrics == pytest.approx(expected, abs=1e-6)
    assert result.best_metric >= result.valid_metrics["Accuracy"]


@pytest.mark.parametrize("form", ["single", "list", "dict"])
def test_test_loaders_run_after_training_with_valid_metrics(tmp_path, form):
    first, second = tiny_loader(2, seed=3), tiny_loader(1, seed=4)
    loaders = {"single": first, "list": [first, second], "dict": {"holdout": first, "extra": second}}[form]
    names = {"single": ["test"], "list": ["test", "test_1"], "dict": ["holdout", "extra"]}[form]
    seen = []

    class TestNames(Callback):
        def on_test_loader_end(self, context):
            seen.append((context.test_name, dict(context.metrics_dict)))

    net = tiny_mlp()
    result = Trainer("tests", ckpt_root_dir=str(tmp_path)).train(
        net,
        base_params(max_epochs=1, valid_metrics_list=[ACCURACY], phase_callbacks=[TestNames()]),
        tiny_loader(3),
        test_loaders=loaders,
    )
    assert list(result.test_metrics) == names
    assert [name for name, _ in seen] == names
    for (name, metrics), loader in zip(seen, [first, second]):
        assert result.test_metrics[name] == metrics == pytest.approx(_evaluate(net, loader), abs=1e-6)


def test_seed_makes_runs_reproducible(tmp_path):
    def run(seed):
        net = tiny_mlp()
        loader = DataLoader(tiny_dataset(24), batch_size=4, shuffle=True)
        _train(tmp_path, net=net, train_loader=loader, name=f"seed{seed}", max_epochs=2, seed=seed)
        return net.state_dict()

    first, again, other = run(5), run(5), run(6)
    assert all(torch.equal(first[key], again[key]) for key in first)
    assert not all(torch.equal(first[key], other[key]) for key in first)


def test_optimizer_and_loss_objects_are_accepted(tmp_path):
    net = tiny_mlp()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.5)
    result = _train(
        tmp_path, net=net, optimizer=optimizer, initial_lr=None, loss=torch.nn.CrossEntropyLoss(), max_epochs=1
    )
    assert result.global_step == 3
    assert optimizer.param_groups[0]["lr"] == 0.5
    net = tiny_mlp()
    _train(
        tmp_path, net=net, name="class", optimizer=torch.optim.Adam, loss={"CrossEntropyLoss": {"label_smoothing": 0.1}}
    )


class OnlyBatchEnd(Callback):
    def on_train_batch_end(self, context): ...


class Nothing(Callback):
    pass


class StepAndEpochEnd(PhaseCallback):
    def __init__(self):
        super().__init__(Phase.TRAIN_BATCH_STEP)

    def __call__(self, context): ...

    def on_train_loader_end(self, context): ...


def test_dispatcher_calls_only_overriding_callbacks():
    only, nothing, phase = OnlyBatchEnd(), Nothing(), StepAndEpochEnd()
    dispatcher = CallbackList([only, nothing, phase])
    handlers = {p: list(h) for p, h in dispatcher.handlers.items() if h}
    assert handlers == {
        Phase.TRAIN_BATCH_END: [only.on_train_batch_end],
        Phase.TRAIN_BATCH_STEP: [phase.__call__],
        Phase.TRAIN_EPOCH_END: [phase.on_train_loader_end],
    }
    assert set(dispatcher.handlers) == set(Phase)
    assert dispatcher.stateful() == []


def test_dispatcher_rejects_non_callbacks():
    with pytest.raises(
        TypeError, match=r"phase_callbacks: 'x' is a str, not a Callback; derive it from callbacks\.Callback"
    ):
        CallbackList([OnlyBatchEnd(), "x"])


def test_docs_callback_example_runs(tmp_path, monkeypatch):
    """The Python blocks of docs/training_loop.md run as written (they assert their own results)."""
    import re
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "training_loop.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", doc, flags=re.DOTALL)
    assert blocks
    monkeypatch.chdir(tmp_path)
    for block in blocks:
        exec(compile(block, "docs/training_loop.md", "exec"), {"__name__": "doc_example"})
    assert (tmp_path / "checkpoints" / "doc_callbacks" / "ckpt_latest.pth").is_file()


class LRSeen(Callback):
    """The LR a user callback sees when a step opens, and the LR in force when the optimizer steps."""

    def __init__(self):
        self.at_start: list[tuple[int, float]] = []
        self.at_step: list[tuple[int, float]] = []

    def on_train_batch_start(self, context):
        if context.opens_step:
            self.at_start.append((context.global_step, context.optimizer.param_groups[0]["lr"]))

    def on_train_batch_gradient_step_start(self, context):
        self.at_step.append((context.global_step, context.optimizer.param_groups[0]["lr"]))


@register_lr_scheduler("TestOnlyHalvingPerStep")
class HalvingPerStep(LRCallbackBase):
    """LR of optimizer step k = initial_lr * 0.5 ** k, written when step k opens."""

    def __init__(self, initial_lr, update_param_groups, train_loader_len, net, training_params, **kwargs):
        super().__init__(
            Phase.TRAIN_BATCH_START, initial_lr, update_param_groups, train_loader_len, net, training_params
        )

    def is_lr_scheduling_enabled(self, context):
        return context.opens_step

    def perform_scheduling(self, context):
        self.lr = self.initial_lr * 0.5**context.global_step
        self.update_lr(context.optimizer, context.epoch, context.batch_idx)


def test_registered_lr_callback_runs_before_user_callbacks(tmp_path):
    seen = LRSeen()
    _train(tmp_path, max_epochs=2, batch_accumulate=2, lr_mode="TestOnlyHalvingPerStep", phase_callbacks=[seen])
    expected = [(step, 0.1 * 0.5**step) for step in range(4)]
    assert seen.at_start == seen.at_step == expected


def test_builtin_schedule_lr_is_in_force_when_user_callbacks_run(tmp_path):
    seen = LRSeen()
    _train(tmp_path, max_epochs=2, lr_mode="CosineLRScheduler", phase_callbacks=[seen])
    assert seen.at_start == seen.at_step
    lrs = [lr for _, lr in seen.at_start]
    assert [step for step, _ in seen.at_start] == list(range(6))
    assert lrs[0] == 0.1 and all(later < earlier for earlier, later in zip(lrs, lrs[1:]))


class PhaseSetByHand(PhaseCallback):
    """Sets ``phase`` itself, as a string, without calling PhaseCallback.__init__ (SuperGradients style)."""

    def __init__(self):
        self.phase = "TRAIN_EPOCH_END"

    def __call__(self, context): ...


class PhaseForgotten(PhaseCallback):
    def __init__(self):
        pass

    def __call__(self, context): ...


def test_dispatcher_accepts_a_phase_string_set_by_hand_and_rejects_a_missing_phase():
    by_hand = PhaseSetByHand()
    dispatcher = CallbackList([by_hand])
    assert dispatcher.handlers[Phase.TRAIN_EPOCH_END] == (by_hand.__call__,)
    with pytest.raises(
        TypeError, match=r"PhaseForgotten\.phase: expected a Phase or a phase name string, got NoneType"
    ):
        CallbackList([PhaseForgotten()])


def test_epoch_summary_lines_and_silent_mode(tmp_path, capsys):
    _train(tmp_path, valid_loader=tiny_loader(2), max_epochs=3, run_validation_freq=2, silent_mode=False)
    summaries = [line for line in capsys.readouterr().err.splitlines() if re.match(r"epoch \d+/\d+ \| ", line)]
    assert len(summaries) == 3
    assert re.fullmatch(r"epoch 1/3 \| train loss [\d.e-]+ \| lr 0\.1 \| [\d.]+s", summaries[0])
    assert re.fullmatch(
        r"epoch 2/3 \| train loss [\d.e-]+ \| valid loss [\d.e-]+ \| lr 0\.1 \| [\d.]+s \| best", summaries[1]
    )
    assert summaries[2].startswith("epoch 3/3 | train loss ")
    _train(tmp_path, name="silent", valid_loader=tiny_loader(2), max_epochs=2, silent_mode=True)
    assert capsys.readouterr().err == ""


def test_per_class_metrics_are_lists_and_cannot_be_watched(tmp_path, capsys):
    per_class = {"Accuracy": {"task": "multiclass", "num_classes": 3, "average": None}}
    result = _train(
        tmp_path, valid_loader=tiny_loader(2), max_epochs=1, valid_metrics_list=[per_class], silent_mode=False
    )
    accuracy = result.valid_metrics["Accuracy"]
    assert isinstance(accuracy, list) and len(accuracy) == 3 and all(isinstance(value, float) for value in accuracy)
    assert "valid loss" in capsys.readouterr().err
    with pytest.raises(TypeError, match=r"metric_to_watch 'Accuracy' must be a scalar metric, got list \[.*\]"):
        _train(
            tmp_path,
            name="watched",
            valid_loader=tiny_loader(2),
            max_epochs=1,
            valid_metrics_list=[per_class],
            metric_to_watch="Accuracy",
            greater_metric_to_watch_is_better=True,
        )
