"""Bad input: every error names the key, the bad value and the valid choices, before the first batch."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf
from tiny_fixtures import base_params, tiny_loader, tiny_mlp

from callbacks import Callback, PhaseCallback
from trainer import Trainer
from trainer.params import TrainingParams, resolve_training_params


class Tripwire:
    """A sized loader that fails the test if the trainer ever iterates it."""

    def __len__(self) -> int:
        return 3

    def __iter__(self):
        raise AssertionError("the loader was iterated: the error came after the first batch")


def _train(tmp_path, **overrides):
    params = base_params(**overrides)
    return Trainer("bad", ckpt_root_dir=str(tmp_path)).train(tiny_mlp(), params, Tripwire(), Tripwire())


BAD_INPUT = [
    pytest.param(
        {"max_epochs": None}, ValueError, r"training_params: missing required key 'max_epochs'", id="missing-max_epochs"
    ),
    pytest.param({"loss": None}, ValueError, r"training_params: missing required key 'loss'", id="missing-loss"),
    pytest.param(
        {"optimizer": "Adamw"},
        ValueError,
        r"key 'optimizer': optimizer: unknown name 'Adamw'\. Valid names: .*Adam, AdamW, .*SGD.*Did you mean 'AdamW'\?",
        id="unknown-optimizer",
    ),
    pytest.param(
        {"optimizer": 3},
        TypeError,
        r"key 'optimizer' must be a registered name, a torch\.optim\.Optimizer class or instance, got int 3",
        id="optimizer-type",
    ),
    pytest.param(
        {"optimizer_params": {"momentm": 0.9}},
        TypeError,
        r"optimizer_params \{'momentm': 0\.9\} do not fit SGD: .*Unknown key 'momentm'\. Did you mean 'momentum'\?",
        id="optimizer_params-key",
    ),
    pytest.param({"initial_lr": None}, ValueError, r"missing required key 'initial_lr'", id="missing-initial_lr"),
    pytest.param(
        {"initial_lr": "0.1"}, TypeError, r"initial_lr\['default'\] must be a number, got str '0\.1'", id="lr-str"
    ),
    pytest.param(
        {"initial_lr": {"0": 0.1, "default": 0.01, "9": 0.5}},
        ValueError,
        r"initial_lr prefix '9' matches no parameter of the net\.",
        id="lr-prefix",
    ),
    pytest.param(
        {"initial_lr": -0.1}, ValueError, r"initial_lr\['default'\] must be a number >= 0, got -0\.1", id="negative-lr"
    ),
    pytest.param(
        {"loss": "CrossEntropy"},
        ValueError,
        r"key 'loss': loss: unknown name 'CrossEntropy'\. Valid names: .*MSELoss.*Did you mean 'CrossEntropyLoss'\?",
        id="unknown-loss",
    ),
    pytest.param(
        {"loss": {"CrossEntropyLos": {}}},
        ValueError,
        r"unknown name 'CrossEntropyLos'.*Did you mean 'CrossEntropyLoss'\?",
        id="unknown-loss-mapping",
    ),
    pytest.param(
        {"loss": 5},
        TypeError,
        r"key 'loss' must be a registered name, \{name: params\} or an nn\.Module, got int 5",
        id="loss-type",
    ),
    pytest.param(
        {"valid_metrics_list": ["Acuracy"]},
        ValueError,
        r"key 'valid_metrics_list': metric: unknown name 'Acuracy'\. Valid names: .*Did you mean 'Accuracy'\?",
        id="unknown-metric",
    ),
    pytest.param(
        {"train_metrics_list": [{"Accuracy": {"task": "multiclas", "num_classes": 3}}]},
        ValueError,
        r"key 'train_metrics_list': cannot build metric 'Accuracy' with \{'task': 'multiclas', 'num_classes': 3\}",
        id="bad-metric-params",
    ),
    pytest.param(
        {"valid_metrics_list": [3.5]},
        TypeError,
        r"key 'valid_metrics_list': each entry must be a torchmetrics Metric, a name or \{name: params\}, got float 3\.5",
        id="metric-type",
    ),
    pytest.param(
        {"valid_metrics_list": [{"Accuracy": {"task": "multiclass", "num_classes": 3}}], "metric_to_watch": "accuracy"},
        ValueError,
        r"metric_to_watch 'accuracy' is not among the validation metrics \['loss', 'Accuracy'\]\. Did you mean 'Accuracy'\?",
        id="metric_to_watch-not-computed",
    ),
    pytest.param({"max_epochs": "10"}, TypeError, r"key 'max_epochs' must be int, got str '10'", id="max_epochs-str"),
    pytest.param({"max_epochs": 0}, ValueError, r"key 'max_epochs' must be >= 1, got 0", id="max_epochs-zero"),
    pytest.param(
        {"batch_accumulate": 1.5},
        TypeError,
        r"key 'batch_accumulate' must be int, got float 1\.5",
        id="accumulate-float",
    ),
    pytest.param(
        {"batch_accumulate": 0}, ValueError, r"key 'batch_accumulate' must be >= 1, got 0", id="accumulate-zero"
    ),
    pytest.param(
        {"batch_accumulate": -2}, ValueError, r"key 'batch_accumulate' must be >= 1, got -2", id="accumulate-negative"
    ),
    pytest.param(
        {"silent_mode": "yes"}, TypeError, r"key 'silent_mode' must be bool, got str 'yes'", id="silent_mode-str"
    ),
    pytest.param({"seed": True}, TypeError, r"key 'seed' must be int or None, got bool True", id="seed-bool"),
    pytest.param({"clip_grad_norm": 0}, ValueError, r"key 'clip_grad_norm' must be > 0, got 0", id="clip-zero"),
    pytest.param(
        {"save_ckpt_epoch_list": [1.0]},
        TypeError,
        r"key 'save_ckpt_epoch_list' must be list of int, got list \[1\.0\]",
        id="epoch-list-type",
    ),
    pytest.param(
        {"greater_metric_to_watch_is_better": "yes"},
        TypeError,
        r"key 'greater_metric_to_watch_is_better' must be bool or None, got str 'yes'",
        id="greater-str",
    ),
    pytest.param(
        {"max_epochs": None, "max_epoch": 10},  # the misspelling wins over "missing max_epochs"
        ValueError,
        r"training_params: unknown key 'max_epoch'.*Did you mean 'max_epochs'\? Known keys: .*batch_accumulate",
        id="unknown-key",
    ),
    pytest.param(
        {"batch_acumulate": 2},
        ValueError,
        r"unknown key 'batch_acumulate'.*Did you mean 'batch_accumulate'\?",
        id="unknown-key-2",
    ),
    pytest.param(
        {"phase_callbacks": [42]},
        TypeError,
        r"key 'phase_callbacks': 42 is a int, not a Callback, a registered callback name or \{name: params\}",
        id="phase_callbacks-int",
    ),
    pytest.param(
        {"phase_callbacks": [print]},
        TypeError,
        r"key 'phase_callbacks': <built-in function print> is a builtin_function_or_method, not a Callback",
        id="phase_callbacks-function",
    ),
    pytest.param(
        {"phase_callbacks": ["NoSuchCallback"]},
        ValueError,
        r"key 'phase_callbacks': callback: unknown name 'NoSuchCallback'",
        id="phase_callbacks-unknown-name",
    ),
    pytest.param(
        {"phase_callbacks": Callback()},
        TypeError,
        r"key 'phase_callbacks' must be list, got Callback",
        id="phase_callbacks-not-list",
    ),
]


@pytest.mark.parametrize(("overrides", "error", "match"), BAD_INPUT)
def test_bad_input_raises_before_the_first_batch(tmp_path, overrides, error, match):
    with pytest.raises(error, match=match):
        _train(tmp_path, **overrides)
    assert not (tmp_path / "bad").exists()


def test_training_params_must_be_a_mapping(tmp_path):
    with pytest.raises(TypeError, match=r"training_params: expected a dict or an OmegaConf DictConfig, got list"):
        Trainer("bad", ckpt_root_dir=str(tmp_path)).train(tiny_mlp(), [("max_epochs", 1)], Tripwire())


def test_train_loader_needs_a_length(tmp_path):
    with pytest.raises(TypeError, match=r"train_loader: needs a length .*got generator"):
        Trainer("bad", ckpt_root_dir=str(tmp_path)).train(tiny_mlp(), base_params(), (batch for batch in []))


def test_phase_callback_with_unknown_phase_string():
    with pytest.raises(
        ValueError, match=r"PhaseCallback phase: unknown name 'TRAIN_EPOCH_ENDS'.*Did you mean 'TRAIN_EPOCH_END'\?"
    ):
        PhaseCallback("TRAIN_EPOCH_ENDS")


def test_experiment_name_must_be_a_nonempty_string():
    # tests/trainer/test_run_names.py covers every rule of the name.
    with pytest.raises(ValueError, match=r"Trainer: key 'experiment_name' must be a single path component: not empty"):
        Trainer("")


def test_batch_that_is_not_an_input_target_pair(tmp_path):
    triples = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.randn(8, 4), torch.randint(0, 3, (8,)), torch.zeros(8)), batch_size=4
    )
    with pytest.raises(TypeError, match=r"each batch must be an \(inputs, target\) pair, got list of length 3"):
        Trainer("triples", ckpt_root_dir=str(tmp_path)).train(tiny_mlp(), base_params(), triples)


def test_omegaconf_params_are_accepted_and_read_by_attribute(tmp_path):
    seen = []

    class ReadsParams(Callback):
        def on_training_start(self, context):
            seen.append(
                (
                    type(context.training_params),
                    context.training_params.max_epochs,
                    context.training_params.lr_warmup_epochs,
                )
            )

    config = OmegaConf.create(base_params(max_epochs=2))
    params = resolve_training_params(config, extra_known_keys=set())
    assert params.max_epochs == 2 and params.batch_accumulate == 1
    with pytest.raises(AttributeError, match=r"training_params has no key 'max_epoch'\. Did you mean 'max_epochs'\?"):
        _ = params.max_epoch
    config.phase_callbacks = []
    params = {**OmegaConf.to_container(config), "phase_callbacks": [ReadsParams()]}
    Trainer("omegaconf", ckpt_root_dir=str(tmp_path)).train(tiny_mlp(), params, tiny_loader(1))
    assert seen == [(TrainingParams, 2, 0)]


def test_docs_params_table_is_generated_from_training_params():
    from pathlib import Path

    from trainer.params import params_markdown_table

    doc = (Path(__file__).resolve().parents[2] / "docs" / "training_loop.md").read_text()
    start, end = "<!-- params-table:start -->\n", "<!-- params-table:end -->"
    assert start in doc and end in doc
    table = doc.split(start, 1)[1].split(end, 1)[0]
    assert table == params_markdown_table(), (
        "docs/training_loop.md is out of date: replace the text between the params-table markers with "
        "python -c 'from trainer.params import params_markdown_table; print(params_markdown_table(), end=\"\")'"
    )


def test_valid_and_test_loaders_need_a_length_before_training(tmp_path):
    unsized = (batch for batch in [])
    with pytest.raises(TypeError, match=r"valid_loader: needs a length .*got generator"):
        Trainer("bad", ckpt_root_dir=str(tmp_path)).train(tiny_mlp(), base_params(), Tripwire(), unsized)
    with pytest.raises(TypeError, match=r"test_loaders\['holdout'\]: needs a length .*got generator"):
        Trainer("bad", ckpt_root_dir=str(tmp_path)).train(
            tiny_mlp(), base_params(), Tripwire(), test_loaders={"holdout": unsized}
        )
