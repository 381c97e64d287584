"""``resume_schedule``: a finished (or half-way) 4-epoch cosine run resumed with max_epochs raised to 6.

warn: the schedule rebuilt over 6 epochs runs (a jump), with a warning; error: refused before the first
batch; continue: the checkpoint's 4-epoch schedule continues and holds its final value past its end.
Per-step LRs come from the run's steps.csv and are checked against the closed forms.
"""

from __future__ import annotations

import csv
import math
import warnings

import pytest
from tiny_fixtures import base_params, tiny_loader, tiny_mlp

from trainer import Trainer

S = 3  # optimizer steps per epoch (3 batches)
LR0, RATIO = 0.1, 0.1


def cosine(k: int, total: int) -> float:
    """CosineLRScheduler (docs/lr_schedules.md): lr0*r + (lr0 - lr0*r) * 0.5 * (1 + cos(pi * k / N))."""
    return LR0 * RATIO + (LR0 - LR0 * RATIO) * 0.5 * (1 + math.cos(math.pi * k / total))


def params(**overrides):
    defaults = {
        "max_epochs": 4,
        "initial_lr": LR0,
        "lr_mode": "CosineLRScheduler",
        "cosine_final_lr_ratio": RATIO,
        "save_ckpt_epoch_list": [1],
        "tensorboard": False,
    }
    return base_params(**{**defaults, **overrides})


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    """A 4-epoch run: ckpt_epoch_1.pth (after 2 epochs, step 6) and ckpt_latest.pth (after 4, step 12)."""
    root = tmp_path_factory.mktemp("runs")
    Trainer("four", ckpt_root_dir=str(root)).train(tiny_mlp(), params(), tiny_loader(S))
    lrs = step_lrs(root / "four")
    assert lrs == {k: cosine(k, 4 * S) for k in range(4 * S)}
    return root


def step_lrs(run_dir) -> dict[int, float]:
    with open(run_dir / "steps.csv", newline="") as handle:
        return {int(row["global_step"]): float(row["lr/default"]) for row in csv.DictReader(handle)}


def resume(root, name: str, checkpoint: str, policy: str, **overrides) -> dict[int, float]:
    """Resume ``checkpoint`` of the first run with max_epochs 6 into a new run; its per-step LRs."""
    resumed = params(max_epochs=6, resume_path=str(root / "four" / checkpoint), resume_schedule=policy, **overrides)
    Trainer(name, ckpt_root_dir=str(root)).train(tiny_mlp(), resumed, tiny_loader(S))
    return step_lrs(root / name)


@pytest.mark.parametrize(("checkpoint", "resume_step"), [("ckpt_latest.pth", 12), ("ckpt_epoch_1.pth", 6)])
def test_warn_runs_the_rebuilt_schedule_and_says_so(first_run, checkpoint, resume_step):
    with pytest.warns(
        UserWarning,
        match=rf"resume: the LR schedule \(CosineLRScheduler\) built from the current training params gives LR "
        rf"{cosine(resume_step - 1, 6 * S):.6g} for optimizer step {resume_step - 1}, but the run that wrote the "
        rf"checkpoint used {cosine(resume_step - 1, 4 * S):.6g} for it.*max_epochs \(4 -> 6\).*\(resume_schedule: "
        r"warn; 'error' refuses such a resume, 'continue' keeps the checkpoint's schedule\)",
    ):
        lrs = resume(first_run, f"warn_{resume_step}", checkpoint, "warn")
    assert lrs == {k: cosine(k, 6 * S) for k in range(resume_step, 6 * S)}


def test_error_refuses_before_the_first_batch(first_run):
    with pytest.raises(
        ValueError,
        match=rf"gives LR {cosine(5, 6 * S):.6g} for optimizer step 5, but the run that wrote the checkpoint used "
        rf"{cosine(5, 4 * S):.6g} for it; .* changed since the checkpoint: max_epochs \(4 -> 6\)\. .*"
        r"Refusing to resume \(training_params: resume_schedule is 'error'\); set resume_schedule: continue",
    ):
        resume(first_run, "refused", "ckpt_epoch_1.pth", "error")
    assert not (first_run / "refused").exists()


def test_error_resumes_when_the_schedule_is_unchanged(first_run):
    resumed = params(resume_path=str(first_run / "four" / "ckpt_epoch_1.pth"), resume_schedule="error")
    Trainer("same", ckpt_root_dir=str(first_run)).train(tiny_mlp(), resumed, tiny_loader(S))
    assert step_lrs(first_run / "same") == {k: cosine(k, 4 * S) for k in range(2 * S, 4 * S)}


@pytest.mark.parametrize(("checkpoint", "resume_step"), [("ckpt_latest.pth", 12), ("ckpt_epoch_1.pth", 6)])
def test_continue_keeps_the_checkpoints_schedule_and_holds_its_final_value(first_run, checkpoint, resume_step):
    lrs = resume(first_run, f"continue_{resume_step}", checkpoint, "continue")
    final = cosine(4 * S - 1, 4 * S)
    assert lrs == {k: cosine(k, 4 * S) if k < 4 * S else final for k in range(resume_step, 6 * S)}


def torch_cosine_params(**overrides):
    defaults = {
        "max_epochs": 4,
        "initial_lr": LR0,
        "lr_mode": {"CosineAnnealingLR": {"T_max": "auto", "eta_min": 0.01}},
        "tensorboard": False,
    }
    return base_params(**{**defaults, **overrides})


def epoch_lrs(run_dir) -> list[float]:
    with open(run_dir / "metrics.csv", newline="") as handle:
        return [float(row["lr/default"]) for row in csv.DictReader(handle)]


def torch_cosine(epoch: int, t_max: int) -> float:
    return 0.01 + (LR0 - 0.01) * (1 + math.cos(math.pi * epoch / t_max)) / 2


def test_a_torch_scheduler_continues_and_holds_while_warn_lets_it_run_past_its_end(tmp_path):
    Trainer("torch4", ckpt_root_dir=str(tmp_path)).train(tiny_mlp(), torch_cosine_params(), tiny_loader(S))
    assert epoch_lrs(tmp_path / "torch4") == pytest.approx([torch_cosine(e, 4) for e in range(4)], rel=1e-12)
    checkpoint = str(tmp_path / "torch4" / "ckpt_latest.pth")
    results = {}
    for policy in ("warn", "continue"):
        resumed = torch_cosine_params(max_epochs=6, resume_path=checkpoint, resume_schedule=policy)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            Trainer(policy, ckpt_root_dir=str(tmp_path)).train(tiny_mlp(), resumed, tiny_loader(S))
        results[policy] = epoch_lrs(tmp_path / policy)
        assert [str(w.message)[:66] for w in caught] == (
            ["resume: lr_mode CosineAnnealingLR: the scheduler built from the cu"] if policy == "warn" else []
        )
    # The restored scheduler (T_max 4) steps on past its end: the cosine rises again.
    assert results["warn"] == pytest.approx([torch_cosine(4, 4), torch_cosine(5, 4)], rel=1e-12)
    # continue holds the value after its last step: eta_min.
    assert results["continue"] == pytest.approx([0.01, 0.01], rel=1e-12)
    with pytest.raises(ValueError, match=r"T_max \(4 -> 6\).*Refusing to resume"):
        Trainer("error", ckpt_root_dir=str(tmp_path)).train(
            tiny_mlp(),
            torch_cosine_params(max_epochs=6, resume_path=checkpoint, resume_schedule="error"),
            tiny_loader(S),
        )


def test_bad_policy_is_refused(tmp_path):
    with pytest.raises(
        ValueError,
        match=r"key 'resume_schedule' must be one of warn, error, continue, got 'contine'\. Did you mean 'continue'\?",
    ):
        Trainer("bad", ckpt_root_dir=str(tmp_path)).train(tiny_mlp(), params(resume_schedule="contine"), tiny_loader(S))


@pytest.mark.parametrize("policy", ["warn", "continue"])
def test_the_preview_with_resume_from_shows_the_trajectory_the_resume_runs(tmp_path, policy):
    pytest.importorskip("sklearn")
    from trainer.cli import main
    from trainer.preview import preview_schedule
    from trainer.recipe import train_from_recipe

    quick = [
        f"ckpt_root_dir={tmp_path}",
        "training_hyperparams.max_train_batches=3",
        "training_hyperparams.silent_mode=true",
    ]
    quick += ["training_hyperparams.plots=false", "training_hyperparams.tensorboard=false"]
    train_from_recipe("digits_cosine", [*quick, "training_hyperparams.max_epochs=4"])
    checkpoint = tmp_path / "digits_cosine" / "ckpt_latest.pth"
    longer = [*quick, "training_hyperparams.max_epochs=6", f"training_hyperparams.resume_schedule={policy}"]
    preview = preview_schedule("digits_cosine", longer, resume_from=checkpoint)
    assert preview.global_step == list(range(12, 18))
    csv_path = tmp_path / "preview.csv"
    assert main(["schedule", "digits_cosine", *longer, "--resume-from", str(checkpoint), "--csv", str(csv_path)]) == 0
    with open(csv_path, newline="") as handle:
        assert [float(row["lr/default"]) for row in csv.DictReader(handle)] == preview.values["lr/default"]
    assert preview.notes[0].startswith(
        f"resumed from {checkpoint} at epoch 4 (global step 12); resume_schedule {policy}"
    )

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        train_from_recipe("digits_cosine", [*longer, "training_hyperparams.resume=true"])
    resumed = step_lrs(tmp_path / "digits_cosine")
    assert preview.values["lr/default"] == [resumed[k] for k in range(12, 18)]
    held = len(set(preview.values["lr/default"])) == 1
    assert held == (policy == "continue")
