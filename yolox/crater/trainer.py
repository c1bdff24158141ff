"""CraterTrainer: the Trainer plus the loss curve, each epoch's throughput line, and the plots at the end."""
import time
from typing import List

from loguru import logger

from yolox.core import Trainer
from yolox.crater.report import save_plots


class CraterTrainer(Trainer):
    """Keeps the loss of every iteration for the curves (read at the progress log), logs each epoch's throughput
    and memory, and draws the
    loss/AP curves and a grid of predictions in the run folder when training ends (rank 0)."""

    def __init__(self, exp, options, policy=None) -> None:
        super().__init__(exp, options, policy)
        self.loss_history: List[dict] = []
        self.plots: List[str] = []

    def before_epoch(self) -> None:
        self.epoch_started = (time.time(), self.samples_seen)
        super().before_epoch()

    def log_progress(self) -> None:
        """Each iteration's losses since the last progress line join the curve (read back in one transfer per
        loss, at the log's pace, so the step never waits for them)."""
        losses = {name: meter.window_values() for name, meter in self.meter.get_filtered_meter("loss").items()}
        count = min((len(values) for values in losses.values()), default=0)
        first = self.progress_in_iter + 2 - count
        for offset in range(count):
            self.loss_history.append({"iteration": first + offset,
                                      **{name: values[offset] for name, values in losses.items()}})
        super().log_progress()

    def after_epoch(self) -> None:
        started, samples = self.epoch_started
        img_per_s = (self.samples_seen - samples) / max(time.time() - started, 1e-9)
        logger.info(f"epoch {self.epoch + 1}/{self.max_epoch}: {img_per_s:.1f} img/s, batch {self.batch_size}, "
                    f"{self.policy.memory_line()}")
        super().after_epoch()

    def after_train(self) -> None:
        super().after_train()
        if self.rank != 0 or not self.eval_history:
            return
        self.plots = save_plots(self.file_name, self.exp.exp_name, self.loss_history, self.eval_history,
                                self.last_eval_outputs, self.evaluator.dataloader.dataset)
        for path in self.plots:
            logger.info(f"wrote {path}")
