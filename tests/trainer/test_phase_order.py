"""The exact order of phase events, and how training ends (stop_training, exceptions, Ctrl-C)."""

from __future__ import annotations

import torch
from tiny_fixtures import base_params, tiny_loader, tiny_mlp

from callbacks import Callback, Phase, PhaseCallback, PhaseContext, load_checkpoint
from trainer import Trainer


class Recorder(Callback):
    """Overrides every Callback method and records (phase, epoch, batch_idx, global_step).

    The phase names are written here literally (not read from PHASE_TO_METHOD), so a wrong
    mapping shows up as a wrong sequence. batch_idx is recorded in batch phases only.
    """

    def __init__(self):
        self.events: list[tuple[str, int, int | None, int]] = []
        self.steps: list[tuple[int, int, bool, bool]] = []

    def _record(self, phase: str, context: PhaseContext, batch: bool = False) -> None:
        self.events.append((phase, context.epoch, context.batch_idx if batch else None, context.global_step))

    def on_training_start(self, context):
        self._record("PRE_TRAINING", context)

    def on_train_loader_start(self, context):
        self._record("TRAIN_EPOCH_START", context)

    def on_train_batch_start(self, context):
        self._record("TRAIN_BATCH_START", context, batch=True)
        self.steps.append((context.epoch, context.batch_idx, context.opens_step, context.closes_step))

    def on_train_batch_loss_end(self, context):
        self._record("TRAIN_BATCH_LOSS_END", context, batch=True)

    def on_train_batch_backward_end(self, context):
        self._record("TRAIN_BATCH_BACKWARD_END", context, batch=True)

    def on_train_batch_gradient_step_start(self, context):
        self._record("TRAIN_BATCH_GRADIENT_STEP_START", context, batch=True)

    def on_train_batch_gradient_step_end(self, context):
        self._record("TRAIN_BATCH_STEP", context, batch=True)

    def on_train_batch_end(self, context):
        self._record("TRAIN_BATCH_END", context, batch=True)

    def on_train_loader_end(self, context):
        self._record("TRAIN_EPOCH_END", context)

    def on_validation_loader_start(self, context):
        self._record("VALIDATION_EPOCH_START", context)

    def on_validation_batch_start(self, context):
        self._record("VALIDATION_BATCH_START", context, batch=True)

    def on_validation_batch_end(self, context):
        self._record("VALIDATION_BATCH_END", context, batch=True)

    def on_validation_loader_end(self, context):
        self._record("VALIDATION_EPOCH_END", context)

    def on_validation_end_best_epoch(self, context):
        self._record("VALIDATION_END_BEST_EPOCH", context)

    def on_test_loader_start(self, context):
        self._record("TEST_START", context)

    def on_test_batch_start(self, context):
        self._record("TEST_BATCH_START", context, batch=True)

    def on_test_batch_end(self, context):
        self._record("TEST_BATCH_END", context, batch=True)

    def on_test_loader_end(self, context):
        self._record("TEST_END", context)

    def on_training_end(self, context):
        self._record("POST_TRAINING", context)


# 2 epochs x 3 train batches, batch_accumulate=2 (steps close at batches 1 and 2: S = 2),
# validation every 2 epochs (so only after epoch 1) on 2 batches, then one test batch.
GOLDEN = [
    ("PRE_TRAINING", 0, None, 0),
    ("TRAIN_EPOCH_START", 0, None, 0),
    ("TRAIN_BATCH_START", 0, 0, 0),
    ("TRAIN_BATCH_LOSS_END", 0, 0, 0),
    ("TRAIN_BATCH_BACKWARD_END", 0, 0, 0),
    ("TRAIN_BATCH_END", 0, 0, 0),
    ("TRAIN_BATCH_START", 0, 1, 0),
    ("TRAIN_BATCH_LOSS_END", 0, 1, 0),
    ("TRAIN_BATCH_BACKWARD_END", 0, 1, 0),
    ("TRAIN_BATCH_GRADIENT_STEP_START", 0, 1, 0),
    ("TRAIN_BATCH_STEP", 0, 1, 1),
    ("TRAIN_BATCH_END", 0, 1, 1),
    ("TRAIN_BATCH_START", 0, 2, 1),
    ("TRAIN_BATCH_LOSS_END", 0, 2, 1),
    ("TRAIN_BATCH_BACKWARD_END", 0, 2, 1),
    ("TRAIN_BATCH_GRADIENT_STEP_START", 0, 2, 1),
    ("TRAIN_BATCH_STEP", 0, 2, 2),
    ("TRAIN_BATCH_END", 0, 2, 2),
    ("TRAIN_EPOCH_END", 0, None, 2),
    ("TRAIN_EPOCH_START", 1, None, 2),
    ("TRAIN_BATCH_START", 1, 0, 2),
    ("TRAIN_BATCH_LOSS_END", 1, 0, 2),
    ("TRAIN_BATCH_BACKWARD_END", 1, 0, 2),
    ("TRAIN_BATCH_END", 1, 0, 2),
    ("TRAIN_BATCH_START", 1, 1, 2),
    ("TRAIN_BATCH_LOSS_END", 1, 1, 2),
    ("TRAIN_BATCH_BACKWARD_END", 1, 1, 2),
    ("TRAIN_BATCH_GRADIENT_STEP_START", 1, 1, 2),
    ("TRAIN_BATCH_STEP", 1, 1, 3),
    ("TRAIN_BATCH_END", 1, 1, 3),
    ("TRAIN_BATCH_START", 1, 2, 3),
    ("TRAIN_BATCH_LOSS_END", 1, 2, 3),
    ("TRAIN_BATCH_BACKWARD_END", 1, 2, 3),
    ("TRAIN_BATCH_GRADIENT_STEP_START", 1, 2, 3),
    ("TRAIN_BATCH_STEP", 1, 2, 4),
    ("TRAIN_BATCH_END", 1, 2, 4),
    ("TRAIN_EPOCH_END", 1, None, 4),
    ("VALIDATION_EPOCH_START", 1, None, 4),
    ("VALIDATION_BATCH_START", 1, 0, 4),
    ("VALIDATION_BATCH_END", 1, 0, 4),
    ("VALIDATION_BATCH_START", 1, 1, 4),
    ("VALIDATION_BATCH_END", 1, 1, 4),
    ("VALIDATION_EPOCH_END", 1, None, 4),
    ("VALIDATION_END_BEST_EPOCH", 1, None, 4),
    ("TEST_START", 1, None, 4),
    ("TEST_BATCH_START", 1, 0, 4),
    ("TEST_BATCH_END", 1, 0, 4),
    ("TEST_END", 1, None, 4),
    ("POST_TRAINING", 1, None, 4),
]


def _golden_run(tmp_path, *callbacks):
    recorder = Recorder()
    params = base_params(
        max_epochs=2, batch_accumulate=2, run_validation_freq=2, phase_callbacks=[recorder, *callbacks]
    )
    result = Trainer("golden", ckpt_root_dir=str(tmp_path)).train(
        tiny_mlp(), params, tiny_loader(3), tiny_loader(2, seed=1), test_loaders=tiny_loader(1, seed=2)
    )
    return recorder, result


def test_golden_phase_order(tmp_path):
    recorder, result = _golden_run(tmp_path)
    assert recorder.events == GOLDEN
    assert {name for name, *_ in recorder.events} == {phase.name for phase in Phase}
    assert recorder.steps == [
        (0, 0, True, False),
        (0, 1, False, True),
        (0, 2, True, True),
        (1, 0, True, False),
        (1, 1, False, True),
        (1, 2, True, True),
    ]
    assert (result.global_step, result.epochs_run, result.next_epoch) == (4, 2, 2)


class AtPhase(PhaseCallback):
    """Records (epoch, batch_idx, global_step) at its one phase."""

    def __init__(self, phase):
        super().__init__(phase)
        self.calls: list[tuple[int, int, int]] = []

    def __call__(self, context):
        self.calls.append((context.epoch, context.batch_idx, context.global_step))


def test_phase_callback_fires_exactly_at_its_phase(tmp_path):
    at_step = AtPhase(Phase.TRAIN_BATCH_STEP)
    at_valid_end = AtPhase("VALIDATION_EPOCH_END")
    at_epoch_start = AtPhase("TRAIN_EPOCH_START")
    recorder, _ = _golden_run(tmp_path, at_step, at_valid_end, at_epoch_start)
    assert at_step.phase is Phase.TRAIN_BATCH_STEP and at_valid_end.phase is Phase.VALIDATION_EPOCH_END
    assert at_step.calls == [(0, 1, 1), (0, 2, 2), (1, 1, 3), (1, 2, 4)]
    assert at_valid_end.calls == [(1, 1, 4)]  # batch_idx is the last validation batch's
    assert [(epoch, step) for epoch, _, step in at_epoch_start.calls] == [(0, 0), (1, 2)]
    assert recorder.events == GOLDEN


class StopAt(Callback):
    """Sets stop_training in the middle of epoch ``epoch``."""

    def __init__(self, epoch: int):
        self.epoch = epoch
        self.batches: list[tuple[int, int]] = []

    def on_train_batch_end(self, context):
        self.batches.append((context.epoch, context.batch_idx))
        if context.epoch == self.epoch and context.batch_idx == 0:
            context.stop_training = True


def test_stop_training_ends_after_the_current_epoch(tmp_path):
    stopper = StopAt(epoch=1)
    recorder = Recorder()
    result = Trainer("stop", ckpt_root_dir=str(tmp_path)).train(
        tiny_mlp(), base_params(max_epochs=5, phase_callbacks=[stopper, recorder]), tiny_loader(3), tiny_loader(2)
    )
    assert stopper.batches == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]
    assert (result.epochs_run, result.next_epoch, result.global_step) == (2, 2, 6)
    phases = [name for name, *_ in recorder.events]
    assert phases.count("VALIDATION_EPOCH_END") == 2  # the stopping epoch completes, validation included
    assert phases[-1] == "POST_TRAINING"
    assert load_checkpoint(tmp_path / "stop" / "ckpt_latest.pth")["epoch"] == 2


class RaiseAt(Callback):
    """Raises ``error`` at TRAIN_BATCH_END of (epoch, batch_idx); records what POST_TRAINING sees."""

    def __init__(self, epoch: int, batch_idx: int, error: BaseException):
        self.at = (epoch, batch_idx)
        self.error = error
        self.post_training: list[BaseException | None] = []
        self.weights_after_validation: list[dict[str, torch.Tensor]] = []

    def on_train_batch_end(self, context):
        if (context.epoch, context.batch_idx) == self.at:
            raise self.error

    def on_validation_loader_end(self, context):
        self.weights_after_validation.append({k: v.clone() for k, v in context.net.state_dict().items()})

    def on_training_end(self, context):
        self.post_training.append(context.exception)


def test_post_training_fires_when_training_raises(tmp_path):
    error = ValueError("boom in a callback")
    raiser = RaiseAt(epoch=1, batch_idx=1, error=error)
    try:
        Trainer("raise", ckpt_root_dir=str(tmp_path)).train(
            tiny_mlp(), base_params(max_epochs=3, phase_callbacks=[raiser]), tiny_loader(3), tiny_loader(2)
        )
    except ValueError as raised:
        assert raised is error
    else:
        raise AssertionError("the callback's exception did not propagate")
    assert raiser.post_training == [error]


def test_keyboard_interrupt_ends_cleanly_with_last_checkpoint_intact(tmp_path):
    raiser = RaiseAt(epoch=1, batch_idx=1, error=KeyboardInterrupt())
    result = Trainer("interrupt", ckpt_root_dir=str(tmp_path)).train(
        tiny_mlp(), base_params(max_epochs=3, phase_callbacks=[raiser]), tiny_loader(3), tiny_loader(2)
    )
    assert result.interrupted is True
    assert (result.epochs_run, result.next_epoch, result.global_step) == (1, 1, 5)
    assert raiser.post_training == [None]
    run_dir = tmp_path / "interrupt"
    assert sorted(path.name for path in run_dir.iterdir() if ".pth" in path.name) == [
        "ckpt_best.pth",
        "ckpt_latest.pth",
    ]
    checkpoint = load_checkpoint(run_dir / "ckpt_latest.pth")
    assert (checkpoint["epoch"], checkpoint["global_step"]) == (1, 3)
    (after_epoch_0,) = raiser.weights_after_validation
    assert checkpoint["net"].keys() == after_epoch_0.keys()
    assert all(torch.equal(checkpoint["net"][key], after_epoch_0[key]) for key in after_epoch_0)
