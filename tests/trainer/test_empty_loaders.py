"""Empty loaders are refused before the first batch; a loader shorter than its len() ends the epoch
with a warning naming both numbers, and the clock counts the steps that were taken."""

from __future__ import annotations

import csv
import math

import pytest
from tiny_fixtures import base_params, tiny_dataset, tiny_loader, tiny_mlp
from torch.utils.data import DataLoader

from callbacks.errors import ShortLoaderWarning
from trainer import Trainer


def empty_loader() -> DataLoader:
    return DataLoader(tiny_dataset(3), batch_size=4, drop_last=True)


@pytest.mark.parametrize(
    ("loaders", "where"),
    [
        ({"train_loader": empty_loader()}, "train_loader"),
        ({"valid_loader": empty_loader()}, "valid_loader"),
        ({"test_loaders": {"holdout": empty_loader()}}, r"test_loaders\['holdout'\]"),
    ],
)
def test_an_empty_loader_is_refused_before_the_first_batch(tmp_path, loaders, where):
    arguments = {"train_loader": tiny_loader(), **loaders}
    with pytest.raises(
        ValueError,
        match=rf"^{where}: has no batches \(len\(\) is 0\) \(its dataset holds 3 samples, batch_size 4\); give it "
        r"data, or lower batch_size / set drop_last=False\.$",
    ):
        Trainer("empty", ckpt_root_dir=str(tmp_path)).train(tiny_mlp(), base_params(), **arguments)
    assert list(tmp_path.iterdir()) == []


def test_max_train_batches_zero_is_refused(tmp_path):
    with pytest.raises(
        ValueError,
        match=r"training_params: key 'max_train_batches' must be >= 1 \(0 would leave train_loader without batches\), got 0\.",
    ):
        Trainer("zero", ckpt_root_dir=str(tmp_path)).train(tiny_mlp(), base_params(max_train_batches=0), tiny_loader())


class ShortLoader:
    """Says it has ``claimed`` batches but yields only the first ``real`` of ``loader``'s."""

    def __init__(self, loader, claimed: int, real: int):
        self.loader, self.claimed, self.real = loader, claimed, real

    def __len__(self):
        return self.claimed

    def __iter__(self):
        for index, batch in enumerate(self.loader):
            if index == self.real:
                return
            yield batch


def test_a_short_loader_warns_with_both_numbers_and_the_clock_counts_the_steps_taken(tmp_path):
    params = base_params(max_epochs=2, lr_mode="CosineLRScheduler", cosine_final_lr_ratio=0.0)
    short = ShortLoader(tiny_loader(5), claimed=5, real=3)
    with pytest.warns(ShortLoaderWarning) as caught:
        result = Trainer("short", ckpt_root_dir=str(tmp_path)).train(tiny_mlp(), params, short)
    assert [str(warning.message).split(";")[0] for warning in caught] == [
        "train_loader: yielded 3 batches in epoch 0, but len() says 5",
        "train_loader: yielded 3 batches in epoch 1, but len() says 5",
    ]
    assert result.global_step == 6
    with open(tmp_path / "short" / "steps.csv", newline="") as handle:
        steps = list(csv.DictReader(handle))
    # The schedule stays on its clock: step k uses the cosine of k over the 2 x 5 steps len() announced.
    assert [int(row["global_step"]) for row in steps] == list(range(6))
    assert [float(row["lr/default"]) for row in steps] == [
        0.1 * 0.5 * (1 + math.cos(math.pi * k / 10)) for k in range(6)
    ]
    assert math.isfinite(result.train_metrics["loss"])  # the mean over the 3 batches that ran


def test_a_loader_that_yields_nothing_is_an_error(tmp_path):
    with pytest.raises(RuntimeError, match=r"train_loader: yielded no batches in epoch 0, though len\(\) says 2\."):
        Trainer("none", ckpt_root_dir=str(tmp_path)).train(
            tiny_mlp(), base_params(), ShortLoader(tiny_loader(2), claimed=2, real=0)
        )


def test_a_short_validation_loader_warns(tmp_path):
    with pytest.warns(ShortLoaderWarning, match=r"valid_loader: yielded 1 batches in epoch 0, but len\(\) says 2"):
        result = Trainer("vshort", ckpt_root_dir=str(tmp_path)).train(
            tiny_mlp(), base_params(), tiny_loader(), ShortLoader(tiny_loader(2), claimed=2, real=1)
        )
    assert math.isfinite(result.valid_metrics["loss"])
