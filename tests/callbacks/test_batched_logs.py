"""Run logs written in batches: the event-file encoder, TensorBoard equal to steps.csv, flush on a crash,
purge on resume."""

from __future__ import annotations

import csv
import random
import struct

import pytest
from tiny_fixtures import base_params, tiny_loader, tiny_mlp

from callbacks import Callback
from callbacks.event_file import EventFileWriter, masked_crc32c_batch
from callbacks.loggers import StepLogger
from trainer import Trainer

tensorboard = pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402
from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c  # noqa: E402


def read_rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def float32(value: float) -> float:
    return struct.unpack("<f", struct.pack("<f", value))[0]


def scalars(log_dir) -> dict[str, list[tuple[int, float]]]:
    events = EventAccumulator(str(log_dir))
    events.Reload()
    return {tag: [(event.step, event.value) for event in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def test_batched_crc_equals_tensorboards_own():
    rng = random.Random(0)
    records = [bytes(rng.randrange(256) for _ in range(rng.randrange(0, 90))) for _ in range(300)]
    assert masked_crc32c_batch(records) == [masked_crc32c(record) for record in records]


def test_event_file_holds_every_value_at_its_step(tmp_path):
    writer = EventFileWriter(tmp_path)
    steps = [0, 1, 127, 128, 16383, 16384, 2**35]  # step varints of 1, 2, 3 and 6 bytes
    values = [[0.1 * step, 0.9, 1.0 / (step + 1)] for step in steps]
    writer.add_rows(["lr/default", "momentum/default", "loss"], steps, [1000.0 + i for i in range(7)], values)
    writer.add_scalars([(5, 2000.0, {"valid/loss": 0.25, "valid/Accuracy": [0.5, 1.0], "note": None, "flag": True})])
    writer.close()
    logged = scalars(tmp_path)
    assert set(logged) == {"lr/default", "momentum/default", "loss", "valid/loss"}
    for column, tag in enumerate(["lr/default", "momentum/default", "loss"]):
        assert logged[tag] == [(step, float32(row[column])) for step, row in zip(steps, values)]
    assert logged["valid/loss"] == [(5, 0.25)]


class FailAt(Callback):
    def __init__(self, epoch: int, batch_idx: int):
        self.epoch, self.batch_idx = epoch, batch_idx

    def on_train_batch_end(self, context):
        if (context.epoch, context.batch_idx) == (self.epoch, self.batch_idx):
            raise RuntimeError("boom")


def test_tensorboard_gets_exactly_the_csv_values_and_a_crash_flushes_the_pending_rows(tmp_path):
    params = base_params(
        max_epochs=3, tensorboard=True, optimizer_params={"momentum": 0.9}, lr_mode="CosineLRScheduler"
    )
    params["phase_callbacks"] = [FailAt(epoch=1, batch_idx=2)]
    with pytest.raises(RuntimeError, match="boom"):
        Trainer("crash", ckpt_root_dir=str(tmp_path)).train(tiny_mlp(), params, tiny_loader(5))
    rows = read_rows(tmp_path / "crash" / "steps.csv")
    # Epoch 0's 5 steps, then epoch 1's steps 5, 6, 7 (the exception came after step 7): written on the way out.
    assert [int(row["global_step"]) for row in rows] == list(range(8))
    logged = scalars(tmp_path / "crash" / "tensorboard")
    for tag in ("lr/default", "momentum/default", "loss"):
        assert logged[tag] == [(int(row["global_step"]), float32(float(row[tag]))) for row in rows]


def test_resume_purges_the_later_events_and_continues(tmp_path):
    def run(**overrides):
        params = base_params(max_epochs=3, seed=1, tensorboard=True, lr_mode="CosineLRScheduler", **overrides)
        Trainer("tb", ckpt_root_dir=str(tmp_path)).train(tiny_mlp(), params, tiny_loader(4, shuffle=True))

    run(save_ckpt_epoch_list=[0])
    run(resume_path=str(tmp_path / "tb" / "ckpt_epoch_0.pth"))
    logged = scalars(tmp_path / "tb" / "tensorboard")
    rows = read_rows(tmp_path / "tb" / "steps.csv")
    assert [int(row["global_step"]) for row in rows] == list(range(12))
    # Steps 4.. of the first run are purged by the resumed run's SessionLog.START at step 4.
    assert logged["lr/default"] == [(int(row["global_step"]), float32(float(row["lr/default"]))) for row in rows]


def test_rows_reach_the_disk_every_flush_every_steps_or_flush_seconds(tmp_path):
    class Watch(Callback):
        def __init__(self):
            self.on_disk = []

        def on_train_batch_end(self, context):
            self.on_disk.append(len(read_rows(tmp_path / "steps.csv")))

    watch = Watch()
    params = base_params(
        max_epochs=1, log_steps=False, phase_callbacks=[StepLogger(tmp_path / "steps.csv", flush_every=3), watch]
    )
    Trainer("every3", ckpt_root_dir=str(tmp_path)).train(tiny_mlp(), params, tiny_loader(7))
    # Three pending rows are written when the next step starts (batches 4 and 7), with the check for a
    # step that did not happen; the 7th row at the epoch's end.
    assert watch.on_disk == [0, 0, 0, 3, 3, 3, 6]
    assert len(read_rows(tmp_path / "steps.csv")) == 7
    watch.on_disk.clear()
    params["phase_callbacks"] = [StepLogger(tmp_path / "steps.csv", flush_seconds=0.0), watch]
    Trainer("always", ckpt_root_dir=str(tmp_path)).train(tiny_mlp(), params, tiny_loader(3))
    assert watch.on_disk == [0, 1, 2]
    assert len(read_rows(tmp_path / "steps.csv")) == 3


class FailBeforeStep(Callback):
    """Raises inside ``optimizer.step()`` (a step pre-hook) at one global step: after every
    TRAIN_BATCH_GRADIENT_STEP_START handler (the step log's row taken), before the update."""

    def __init__(self, global_step: int):
        self.global_step = global_step

    def on_training_start(self, context):
        def hook(optimizer, args, kwargs):
            if context.global_step == self.global_step:
                raise RuntimeError("before the step")

        context.optimizer.register_step_pre_hook(hook)


def test_a_step_cut_short_before_the_optimizer_step_gets_no_row(tmp_path):
    params = base_params(max_epochs=2, phase_callbacks=[FailBeforeStep(global_step=8)])
    with pytest.raises(RuntimeError, match="before the step"):
        Trainer("cut", ckpt_root_dir=str(tmp_path)).train(tiny_mlp(), params, tiny_loader(5))
    rows = read_rows(tmp_path / "cut" / "steps.csv")
    # Epoch 0's 5 steps and epoch 1's steps 5, 6, 7; step 8 (epoch 1, batch 3) never happened.
    assert [(row["global_step"], row["epoch"], row["batch_idx"]) for row in rows] == [
        *[(str(k), "0", str(k)) for k in range(5)],
        *[(str(5 + b), "1", str(b)) for b in range(3)],
    ]


class LossReads(Callback):
    """The loss of every train batch as the context offers it: (loss_value, loss.item()) at BACKWARD_END."""

    def __init__(self):
        self.reads: list[tuple[float | None, float]] = []

    def on_train_batch_backward_end(self, context):
        self.reads.append((context.loss_value, context.loss.item()))


@pytest.mark.parametrize("policy", ["raise", "skip"])
def test_loss_value_is_the_batch_loss_read_on_the_host_and_the_step_log_uses_it(tmp_path, policy):
    reads = LossReads()
    params = base_params(max_epochs=2, nonfinite_loss=policy, batch_accumulate=2, phase_callbacks=[reads])
    Trainer("value", ckpt_root_dir=str(tmp_path)).train(tiny_mlp(), params, tiny_loader(5))
    assert len(reads.reads) == 10
    assert all(type(value) is float and value == item for value, item in reads.reads)
    # Windows of 2, 2 and 1 batches per epoch: each row's loss is the mean of its micro-batches' losses.
    losses = [item for _, item in reads.reads]
    windows = [(0, 2), (2, 4), (4, 5), (5, 7), (7, 9), (9, 10)]
    expected = [sum(losses[a:b]) / (b - a) if b - a > 1 else losses[a] for a, b in windows]
    assert [float(row["loss"]) for row in read_rows(tmp_path / "value" / "steps.csv")] == expected
