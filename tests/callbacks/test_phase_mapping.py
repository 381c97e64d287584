"""The Phase -> Callback method table: one method per phase, every on_* method once, pinned literally."""

from __future__ import annotations

import dataclasses
import inspect
import re
from pathlib import Path

import pytest

from callbacks import PHASE_TO_METHOD, Callback, Phase, PhaseCallback, PhaseContext

PINNED_TABLE = [
    ("PRE_TRAINING", "on_training_start"),
    ("TRAIN_EPOCH_START", "on_train_loader_start"),
    ("TRAIN_BATCH_START", "on_train_batch_start"),
    ("TRAIN_BATCH_LOSS_END", "on_train_batch_loss_end"),
    ("TRAIN_BATCH_BACKWARD_END", "on_train_batch_backward_end"),
    ("TRAIN_BATCH_GRADIENT_STEP_START", "on_train_batch_gradient_step_start"),
    ("TRAIN_BATCH_STEP", "on_train_batch_gradient_step_end"),
    ("TRAIN_BATCH_END", "on_train_batch_end"),
    ("TRAIN_EPOCH_END", "on_train_loader_end"),
    ("VALIDATION_EPOCH_START", "on_validation_loader_start"),
    ("VALIDATION_BATCH_START", "on_validation_batch_start"),
    ("VALIDATION_BATCH_END", "on_validation_batch_end"),
    ("VALIDATION_EPOCH_END", "on_validation_loader_end"),
    ("VALIDATION_END_BEST_EPOCH", "on_validation_end_best_epoch"),
    ("TEST_START", "on_test_loader_start"),
    ("TEST_BATCH_START", "on_test_batch_start"),
    ("TEST_BATCH_END", "on_test_batch_end"),
    ("TEST_END", "on_test_loader_end"),
    ("POST_TRAINING", "on_training_end"),
]


def test_table_is_pinned_in_firing_order():
    assert [(phase.name, method) for phase, method in PHASE_TO_METHOD.items()] == PINNED_TABLE
    assert [phase.name for phase in Phase] == [name for name, _ in PINNED_TABLE]


def test_every_phase_maps_to_exactly_one_existing_method():
    assert set(PHASE_TO_METHOD) == set(Phase)
    methods = list(PHASE_TO_METHOD.values())
    assert len(methods) == len(set(methods))
    for method in methods:
        assert inspect.isfunction(getattr(Callback, method)), method


def test_every_on_method_of_callback_has_exactly_one_phase():
    on_methods = sorted(name for name, _ in inspect.getmembers(Callback, inspect.isfunction) if name.startswith("on_"))
    assert on_methods == sorted(PHASE_TO_METHOD.values())
    assert len(on_methods) == 19


def test_supergradients_method_names_are_all_present():
    supergradients_names = [
        "on_training_start",
        "on_train_loader_start",
        "on_train_batch_start",
        "on_train_batch_loss_end",
        "on_train_batch_backward_end",
        "on_train_batch_gradient_step_start",
        "on_train_batch_gradient_step_end",
        "on_train_batch_end",
        "on_train_loader_end",
        "on_validation_loader_start",
        "on_validation_batch_start",
        "on_validation_batch_end",
        "on_validation_loader_end",
        "on_validation_end_best_epoch",
        "on_test_loader_start",
        "on_test_batch_start",
        "on_test_batch_end",
        "on_test_loader_end",
        "on_training_end",
    ]
    assert sorted(supergradients_names) == sorted(PHASE_TO_METHOD.values())


def test_phase_values_are_their_names_and_coerce_from_strings():
    for phase in Phase:
        assert phase.value == phase.name == str(phase)
        assert Phase.coerce(phase.name) is phase
        assert Phase.coerce(phase) is phase


def test_unknown_phase_name_lists_choices_and_close_match():
    with pytest.raises(
        ValueError, match=r"unknown name 'TRAIN_EPOCH_ENDD'.*TRAIN_BATCH_END.*Did you mean 'TRAIN_EPOCH_END'\?"
    ):
        Phase.coerce("TRAIN_EPOCH_ENDD")


def test_phase_callback_rejects_bad_phases():
    with pytest.raises(ValueError, match=r"PhaseCallback phase: unknown name 'VALIDATION_END'.*Did you mean"):
        PhaseCallback("VALIDATION_END")
    with pytest.raises(TypeError, match=r"PhaseCallback phase: expected a Phase or a phase name string, got int 3"):
        PhaseCallback(3)


def test_documented_phase_table_matches_the_code():
    """docs/training_loop.md lists every phase with its method, in firing order."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "training_loop.md").read_text()
    rows = re.findall(r"^\| `(\w+)` \| `(on_\w+)` \|", doc, flags=re.MULTILINE)
    assert rows == PINNED_TABLE


def test_documented_context_fields_are_the_dataclass_fields():
    doc = (Path(__file__).resolve().parents[2] / "docs" / "training_loop.md").read_text()
    section = doc.split("## PhaseContext", 1)[1].split("\n## ", 1)[0]
    documented = re.findall(r"^\| `(\w+)` \|", section, flags=re.MULTILINE)
    assert documented == [field.name for field in dataclasses.fields(PhaseContext)]
