"""StepValueReader: the per-step log reads raw param-group entries and turns them into lr_columns values at a flush."""

import pytest
import torch

from callbacks.group_values import StepValueReader, lr_columns, lr_values


def two_group_net():
    return torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))


def groups_of(net):
    return [{"params": net[0].parameters(), "name": "head"}, {"params": net[1].parameters(), "name": "tail"}]


@pytest.mark.parametrize(
    "make_optimizer, scheduled_keys, columns",
    [
        (
            lambda net: torch.optim.SGD(groups_of(net), lr=0.1, momentum=0.9, weight_decay=1e-4),
            ["lr", "momentum", "weight_decay"],
            ["lr/head", "lr/tail", "momentum/head", "momentum/tail", "weight_decay/head", "weight_decay/tail"],
        ),
        (
            lambda net: torch.optim.Adam(groups_of(net), lr=0.01, betas=(0.8, 0.99)),
            ["momentum"],
            ["lr/head", "lr/tail", "momentum/head", "momentum/tail"],
        ),
        (
            lambda net: torch.optim.Adagrad(groups_of(net), lr=0.2),
            ["weight_decay"],
            ["lr/head", "lr/tail", "weight_decay/head", "weight_decay/tail"],
        ),
        (lambda net: torch.optim.Adagrad(net.parameters(), lr=0.2), [], ["lr/default"]),
    ],
)
def test_cells_of_a_read_equal_lr_values_at_the_time_of_the_read(make_optimizer, scheduled_keys, columns):
    optimizer = make_optimizer(two_group_net())
    reader = StepValueReader(optimizer.param_groups, scheduled_keys)
    assert lr_columns(optimizer.param_groups, scheduled_keys) == columns
    reads, expected = [], []
    for step in range(3):
        for index, group in enumerate(optimizer.param_groups):
            group["lr"] = 0.1 * (step + 1) + index  # schedulers replace the values (floats, tuples) in the groups
            if "betas" in group:
                group["betas"] = (0.5 + 0.1 * step, group["betas"][1])
            if "momentum" in group:
                group["momentum"] = 0.9 - 0.1 * step
            group["weight_decay"] = 1e-4 * (step + 1) * (index + 1)
        reads.append(reader.read(optimizer.param_groups))
        expected.append(lr_values(optimizer.param_groups, scheduled_keys))
    assert [reader.cells(entries) for entries in reads] == expected
    assert len(expected[0]) == len(columns)


def test_a_tensor_lr_updated_in_place_is_copied_at_the_read():
    net = torch.nn.Linear(3, 2)
    optimizer = torch.optim.Adam(net.parameters(), lr=torch.tensor(0.01))
    reader = StepValueReader(optimizer.param_groups, [])
    first = reader.read(optimizer.param_groups)
    optimizer.param_groups[0]["lr"].fill_(0.5)  # as torch's schedulers update a tensor LR
    second = reader.read(optimizer.param_groups)
    assert reader.cells(first) == [pytest.approx(0.01), 0.9]
    assert reader.cells(second) == [0.5, 0.9]
