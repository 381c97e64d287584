"""The generic Registry: three ways to register, exact lookups, duplicate protection."""

from __future__ import annotations

import pytest
import torch

from registry import (
    LOSSES,
    LR_SCHEDULERS,
    METRICS,
    OPTIMIZERS,
    TORCH_LR_SCHEDULERS,
    Registry,
    UnknownNameError,
    did_you_mean,
    import_from_path,
    register_lr_scheduler,
    resolve_callable,
)


def test_register_with_a_name_without_arguments_and_bare():
    things = Registry("thing")

    @things.register("named")
    class Named: ...

    @things.register()
    class CalledEmpty: ...

    @things.register
    def bare(): ...

    assert things.names() == ["CalledEmpty", "bare", "named"]
    assert things.get("named") is Named and things.get("CalledEmpty") is CalledEmpty and things.get("bare") is bare
    assert [name for name, _ in things.items()] == ["named", "CalledEmpty", "bare"]  # registration order
    assert "named" in things and "Named" not in things and len(things) == 3


def test_unknown_name_lists_valid_names_and_a_close_match():
    things = Registry("thing")
    things.add("CosineSchedule", object())
    things.add("StepSchedule", object())
    with pytest.raises(
        UnknownNameError,
        match=r"^thing: unknown name 'CosinSchedule'\. Valid names: CosineSchedule, StepSchedule\. "
        r"Did you mean 'CosineSchedule'\?$",
    ):
        things.get("CosinSchedule")
    with pytest.raises(KeyError):  # an UnknownNameError is a KeyError for lookups ...
        things.get("zzz")
    with pytest.raises(ValueError, match=r"unknown name 'zzz'\. Valid names: CosineSchedule, StepSchedule\.$"):
        things.get("zzz")  # ... and a ValueError for configuration values; no close match here


def test_duplicate_name_for_a_different_object_names_both():
    things = Registry("thing")

    @things.register("dup")
    class First: ...

    class Second: ...

    with pytest.raises(
        ValueError,
        match=r"thing registry: name 'dup' is already registered to .*test_registry\..*First; "
        r"cannot register .*test_registry\..*Second under it",
    ):
        things.register("dup")(Second)
    assert things.get("dup") is First


def test_registering_the_same_object_twice_is_fine():
    things = Registry("thing")

    def function(): ...

    assert things.register("f")(function) is function
    assert things.register("f")(function) is function
    assert things.names() == ["f"]


def test_torch_classes_are_registered_under_their_class_names():
    assert OPTIMIZERS.get("AdamW") is torch.optim.AdamW
    assert OPTIMIZERS.get("SGD") is torch.optim.SGD
    assert OPTIMIZERS.get("RMSprop") is torch.optim.RMSprop
    assert "Optimizer" not in OPTIMIZERS
    assert LOSSES.get("CrossEntropyLoss") is torch.nn.CrossEntropyLoss
    import torchmetrics

    assert METRICS.get("Accuracy") is torchmetrics.Accuracy
    assert TORCH_LR_SCHEDULERS.get("StepLR") is torch.optim.lr_scheduler.StepLR


def test_register_lr_scheduler_routes_torch_schedulers_and_others():
    class MyTorchSchedule(torch.optim.lr_scheduler.LambdaLR): ...

    register_lr_scheduler("TestOnlyTorchSchedule")(MyTorchSchedule)
    assert TORCH_LR_SCHEDULERS.get("TestOnlyTorchSchedule") is MyTorchSchedule
    assert "TestOnlyTorchSchedule" not in LR_SCHEDULERS

    @register_lr_scheduler
    class TestOnlyBareSchedule: ...

    assert LR_SCHEDULERS.get("TestOnlyBareSchedule") is TestOnlyBareSchedule


def test_did_you_mean_and_import_helpers():
    assert did_you_mean("adamw", ["SGD", "AdamW"]) == " Did you mean 'AdamW'?"
    assert did_you_mean("qqqq", ["SGD", "AdamW"]) == ""
    assert import_from_path("torch.optim:SGD", "key") is torch.optim.SGD
    assert resolve_callable("math:sqrt", "key")(4.0) == 2.0
    with pytest.raises(
        ValueError, match=r"^key: 'torch\.optim\.SGD' is not an import path; expected 'package\.module:name'\.$"
    ):
        import_from_path("torch.optim.SGD", "key")
    with pytest.raises(
        ValueError, match=r"^key: cannot import module 'no_such_module_xyz' from 'no_such_module_xyz:f'"
    ):
        import_from_path("no_such_module_xyz:f", "key")
    with pytest.raises(
        ValueError, match=r"^key: module 'torch\.optim' has no attribute 'Sgd' \(from 'torch\.optim:Sgd'\)\.$"
    ):
        import_from_path("torch.optim:Sgd", "key")
    with pytest.raises(TypeError, match=r"^key: 'math:pi' is not callable"):
        resolve_callable("math:pi", "key")
