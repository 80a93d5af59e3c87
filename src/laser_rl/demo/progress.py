"""A compact progress bar for the demo's training runs."""

from __future__ import annotations

from tqdm.auto import tqdm
from transformers import ProgressCallback, Trainer, TrainerCallback


class TrainingProgress(TrainerCallback):
    """One labelled bar per run, on its own terminal row (LaSeR and GRPO train side by side), showing the
    latest values of a few logged metrics; it replaces the Trainer's bar, which prints every log dict."""

    def __init__(self, label: str, metrics: tuple[str, ...], position: int = 0):
        self.label, self.metrics, self.position = label, metrics, position

    @classmethod
    def attach(cls, trainer: Trainer, label: str, metrics: tuple[str, ...], position: int = 0) -> None:
        """Swap ``trainer``'s default progress output for this bar."""
        trainer.remove_callback(ProgressCallback)
        trainer.add_callback(cls(label, metrics, position))

    def on_train_begin(self, args, state, control, **kwargs):
        self.bar = tqdm(total=state.max_steps, desc=self.label, position=self.position, leave=True)

    def on_step_end(self, args, state, control, **kwargs):
        self.bar.update(state.global_step - self.bar.n)

    def on_log(self, args, state, control, logs=None, **kwargs):
        shown = {key.removeprefix("laser/"): f"{logs[key]:.3g}" for key in self.metrics if key in (logs or {})}
        if shown:
            self.bar.set_postfix(shown)

    def on_train_end(self, args, state, control, **kwargs):
        self.bar.close()
