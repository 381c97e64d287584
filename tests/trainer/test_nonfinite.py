"""Non-finite training losses: ``nonfinite_loss: raise`` stops and leaves every checkpoint as it was;
``skip`` drops the step (no update, clock held, counted); the saver never writes non-finite weights."""

from __future__ import annotations

import csv
import math

import pytest
import torch
from tiny_fixtures import base_params, tiny_dataset, tiny_mlp
from torch.utils.data import DataLoader, Subset, TensorDataset

from callbacks import Callback
from callbacks.errors import NonFiniteLossError, NonFiniteWeightsError
from trainer import Trainer

BATCH = 4


def loader(nan_batches: tuple[int, ...] = (), num_batches: int = 4) -> DataLoader:
    """``num_batches`` batches of the tiny set; one input of each batch in ``nan_batches`` is NaN."""
    features, labels = tiny_dataset(num_batches * BATCH).tensors
    features = features.clone()
    for batch in nan_batches:
        features[batch * BATCH, 0] = float("nan")
    return DataLoader(TensorDataset(features, labels), batch_size=BATCH)


def rows(path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def cosine(k: int, total: int, lr0: float = 0.1, ratio: float = 0.1) -> float:
    return lr0 * ratio + (lr0 - lr0 * ratio) * 0.5 * (1 + math.cos(math.pi * k / total))


def test_raise_names_epoch_batch_loss_and_lr_and_leaves_every_checkpoint_as_it_was(tmp_path):
    params = base_params(
        max_epochs=2, lr_mode="CosineLRScheduler", cosine_final_lr_ratio=0.1, save_ckpt_epoch_list=[0, 1]
    )
    Trainer("run", ckpt_root_dir=str(tmp_path)).train(tiny_mlp(), params, loader(), loader(num_batches=2))
    run_dir = tmp_path / "run"
    before = {path.name: path.read_bytes() for path in run_dir.glob("*.pth")}
    assert sorted(before) == ["ckpt_best.pth", "ckpt_epoch_0.pth", "ckpt_epoch_1.pth", "ckpt_latest.pth"]

    resumed = {**params, "max_epochs": 3, "resume": True, "save_ckpt_epoch_list": [0, 1, 2]}
    expected_lr = f"{cosine(2 * 4 + 2, 3 * 4):.6g}"  # epoch 2, batch 2: optimizer step 10 of 12
    with (
        pytest.warns(UserWarning, match="resume: the LR schedule"),
        pytest.raises(
            NonFiniteLossError,
            match=rf"the training loss of epoch 2, batch 2 is nan \(LR in force {expected_lr}\)\. Stopped before this "
            r"epoch's checkpoint; every checkpoint on disk is as it was before epoch 2\. Set nonfinite_loss: skip",
        ),
    ):
        Trainer("run", ckpt_root_dir=str(tmp_path)).train(
            tiny_mlp(), resumed, loader(nan_batches=(2,)), loader(num_batches=2)
        )
    assert {path.name: path.read_bytes() for path in run_dir.glob("*.pth")} == before
    assert [path.name for path in run_dir.iterdir() if ".tmp" in path.name] == []
    assert [row["epoch"] for row in rows(run_dir / "metrics.csv")] == ["0", "1"]


class StepRecorder(Callback):
    """Weights after every optimizer step and the global_step seen at each TRAIN_BATCH_END."""

    def __init__(self):
        self.clock: list[tuple[int, int, bool]] = []
        self.summaries: list[tuple[int, int]] = []

    def on_train_batch_end(self, context):
        self.clock.append((context.batch_idx, context.global_step, context.optimizer_stepped))

    def on_train_loader_end(self, context):
        self.summaries.append((context.skipped_steps, context.nonfinite_skipped_steps))


def test_skip_drops_the_step_holds_the_clock_and_counts_it(tmp_path):
    params = base_params(
        max_epochs=1,
        lr_mode="CosineLRScheduler",
        cosine_final_lr_ratio=0.1,
        nonfinite_loss="skip",
        optimizer_params={"momentum": 0.9},
    )
    recorder = StepRecorder()
    skipped = tiny_mlp()
    result = Trainer("skip", ckpt_root_dir=str(tmp_path)).train(
        skipped, {**params, "phase_callbacks": [recorder]}, loader(nan_batches=(2,))
    )
    assert recorder.clock == [(0, 1, True), (1, 2, True), (2, 2, False), (3, 3, True)]
    assert recorder.summaries == [(1, 1)]
    assert result.global_step == 3

    steps = rows(tmp_path / "skip" / "steps.csv")
    assert [(row["global_step"], row["batch_idx"]) for row in steps] == [("0", "0"), ("1", "1"), ("2", "3")]
    assert [float(row["lr/default"]) for row in steps] == [cosine(k, 4) for k in range(3)]
    metrics = rows(tmp_path / "skip" / "metrics.csv")
    assert [(row["global_step"], row["skipped_steps"]) for row in metrics] == [("3", "1")]
    assert math.isfinite(result.train_metrics["loss"])

    reference = tiny_mlp()
    clean = DataLoader(Subset(loader().dataset, [*range(0, 8), *range(12, 16)]), batch_size=BATCH)
    # A run on batches 0, 1, 3 with the LRs the skip run used (the 4-step cosine, held at the skipped batch).
    forced = ForcedLRs([cosine(k, 4) for k in range(3)])
    clean_result = Trainer("clean", ckpt_root_dir=str(tmp_path)).train(
        reference, base_params(max_epochs=1, optimizer_params={"momentum": 0.9}, phase_callbacks=[forced]), clean
    )
    for name, value in skipped.state_dict().items():
        assert torch.equal(value, reference.state_dict()[name]), name
    assert result.train_metrics["loss"] == clean_result.train_metrics["loss"]  # the mean of the 3 finite losses


class ForcedLRs(Callback):
    """Writes ``lrs[k]`` as the LR of optimizer step k."""

    def __init__(self, lrs):
        self.lrs = lrs

    def on_train_batch_start(self, context):
        for group in context.optimizer.param_groups:
            group["lr"] = self.lrs[context.global_step]


def test_skip_raises_after_the_consecutive_limit(tmp_path):
    params = base_params(max_epochs=1, nonfinite_loss="skip", max_consecutive_nonfinite_skips=3)
    with pytest.raises(
        NonFiniteLossError,
        match=r"3 optimizer steps in a row had a non-finite loss \(max_consecutive_nonfinite_skips 3\); the last: "
        r"epoch 0, batch 3, loss nan, LR in force 0\.1\.",
    ):
        Trainer("limit", ckpt_root_dir=str(tmp_path)).train(tiny_mlp(), params, loader(nan_batches=(1, 2, 3)))
    assert not (tmp_path / "limit" / "ckpt_latest.pth").exists()


def test_skips_that_are_not_consecutive_do_not_raise(tmp_path):
    params = base_params(max_epochs=1, nonfinite_loss="skip", max_consecutive_nonfinite_skips=2)
    result = Trainer("spread", ckpt_root_dir=str(tmp_path)).train(tiny_mlp(), params, loader(nan_batches=(0, 2)))
    assert result.global_step == 2


class PoisonWeights(Callback):
    """Sets a weight to inf at the end of epoch ``epoch``'s batches (the loss never saw it)."""

    def __init__(self, epoch):
        self.epoch = epoch

    def on_train_batch_end(self, context):
        if context.epoch == self.epoch and context.batch_idx == 3:
            with torch.no_grad():
                context.net[2].bias[1] = float("inf")


def test_the_saver_refuses_non_finite_weights(tmp_path):
    params = base_params(max_epochs=2, phase_callbacks=[PoisonWeights(epoch=1)])
    with pytest.raises(
        NonFiniteWeightsError,
        match=r"checkpoint: after epoch 1 the weights hold NaN or inf \(first: '2\.bias'\); refusing to write them "
        r"over '.*ckpt_latest\.pth', which still holds the last checkpoint with finite weights\.",
    ):
        Trainer("poison", ckpt_root_dir=str(tmp_path)).train(tiny_mlp(), params, loader())
    saved = torch.load(tmp_path / "poison" / "ckpt_latest.pth", weights_only=True)
    assert saved["epoch"] == 1
    assert all(torch.isfinite(value).all() for value in saved["net"].values())


@pytest.mark.parametrize(
    ("key", "value", "error", "match"),
    [
        (
            "nonfinite_loss",
            "skipp",
            ValueError,
            r"key 'nonfinite_loss' must be one of raise, skip, got 'skipp'\. Did you mean 'skip'\?",
        ),
        ("max_consecutive_nonfinite_skips", 0, ValueError, r"key 'max_consecutive_nonfinite_skips' must be >= 1"),
        ("max_consecutive_nonfinite_skips", 2.5, TypeError, r"key 'max_consecutive_nonfinite_skips' must be int"),
    ],
)
def test_bad_nonfinite_params(tmp_path, key, value, error, match):
    with pytest.raises(error, match=match):
        Trainer("bad", ckpt_root_dir=str(tmp_path)).train(tiny_mlp(), base_params(**{key: value}), loader())


def test_the_docs_example_runs(tmp_path, monkeypatch):
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "training_loop.md").read_text()
    section = doc[doc.index("## Bad data and bad input") :]
    block = section[section.index("```python\n") + len("```python\n") :]
    block = block[: block.index("```")]
    monkeypatch.chdir(tmp_path)
    exec(compile(block, "docs/training_loop.md", "exec"), {})
    assert (tmp_path / "checkpoints" / "nan_skip" / "ckpt_latest.pth").is_file()


def test_the_batched_check_of_a_gpu_names_the_first_bad_batch_of_its_window():
    """On a GPU the loss sum is read every GPU_CHECK_EVERY batches: the window's losses name the first bad one."""
    from callbacks import PhaseContext
    from trainer.distributed import DistributedInfo
    from trainer.guards import TrainLossGuard

    net = tiny_mlp()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.5)
    context = PhaseContext("unit", "", torch.device("cpu"), {}, net, optimizer, None, None, None, None, 1, 8, 8)
    guard = TrainLossGuard("raise", 10, torch.device("cpu"), DistributedInfo())
    guard.on_host, guard.check_every = False, 4  # as on a GPU (GPU_CHECK_EVERY batches), with a shorter window
    guard.start_epoch(context)
    losses = [1.0, 2.0, 3.0, 4.0, 5.0, float("inf"), float("nan"), 6.0]
    with pytest.raises(NonFiniteLossError, match=r"epoch 0, batch 5 is inf \(LR in force 0\.25\)"):
        for batch_idx, value in enumerate(losses):
            context.batch_idx, context.loss = batch_idx, torch.tensor(value)
            optimizer.param_groups[0]["lr"] = 0.05 * batch_idx
            guard.add_loss(context)
    assert batch_idx == 7  # found at the check after the 8th batch, not before


def test_the_epoch_summary_counts_the_skipped_steps(tmp_path, capsys):
    params = base_params(max_epochs=1, nonfinite_loss="skip", silent_mode=False)
    Trainer("summary", ckpt_root_dir=str(tmp_path)).train(tiny_mlp(), params, loader(nan_batches=(1, 3)))
    summary = [line for line in capsys.readouterr().err.splitlines() if line.startswith("epoch 1/1 | train loss")]
    assert len(summary) == 1 and " | skipped steps 2 (2 non-finite loss) | " in summary[0]


def test_skip_of_an_epochs_last_step_leaves_no_row_and_the_next_epoch_logs_on(tmp_path):
    params = base_params(max_epochs=2, nonfinite_loss="skip")
    nan_last = loader(nan_batches=(3,))
    Trainer("last", ckpt_root_dir=str(tmp_path)).train(tiny_mlp(), params, nan_last)
    steps = rows(tmp_path / "last" / "steps.csv")
    # Each epoch skips its batch 3: 3 steps per epoch, the clock held at the skipped one.
    assert [(row["global_step"], row["epoch"], row["batch_idx"]) for row in steps] == [
        ("0", "0", "0"), ("1", "0", "1"), ("2", "0", "2"), ("3", "1", "0"), ("4", "1", "1"), ("5", "1", "2"),
    ]  # fmt: skip
    assert all(math.isfinite(float(row["loss"])) for row in steps)
