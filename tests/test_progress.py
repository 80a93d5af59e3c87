"""The demo's training progress bar replaces the Trainer's and shows only the chosen metrics."""

from types import SimpleNamespace

from transformers import ProgressCallback, Trainer, TrainingArguments

from laser_rl.demo.progress import TrainingProgress
from laser_rl.testing import build_model, build_tokenizer


def test_bar_follows_steps_and_shows_chosen_metrics():
    progress = TrainingProgress("laser training", ("reward", "laser/auroc"))
    state = SimpleNamespace(max_steps=4, global_step=0)
    progress.on_train_begin(None, state, None)
    state.global_step = 3
    progress.on_step_end(None, state, None)
    progress.on_log(None, state, None, logs={"reward": 0.4567, "laser/auroc": 0.9, "loss": 1.0})
    assert progress.bar.n == 3
    assert progress.bar.postfix == "reward=0.457, auroc=0.9"
    progress.on_log(None, state, None, logs={"loss": 2.0})  # nothing chosen: the postfix stays
    assert progress.bar.postfix == "reward=0.457, auroc=0.9"
    progress.on_train_end(None, state, None)


def test_attach_replaces_the_trainer_progress_bar(tmp_path):
    tokenizer = build_tokenizer()
    model = build_model(tokenizer, hidden_size=16, num_layers=1, num_heads=2)
    trainer = Trainer(model=model, args=TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to="none"))
    TrainingProgress.attach(trainer, "warm start", ("loss",))
    kinds = [type(callback) for callback in trainer.callback_handler.callbacks]
    assert ProgressCallback not in kinds
    assert kinds.count(TrainingProgress) == 1
