"""CraterTrainer: the Trainer plus what the end-of-run plots and the epoch log need."""
import time
from typing import List

from loguru import logger

from yolox.core import Trainer


class CraterTrainer(Trainer):
    """Keeps the loss of every iteration for the curves and logs each epoch's throughput and memory."""

    def __init__(self, exp, args, policy) -> None:
        super().__init__(exp, args, policy)
        self.loss_history: List[dict] = []

    def before_epoch(self) -> None:
        self.epoch_started = (time.time(), self.samples_seen)
        super().before_epoch()

    def after_iter(self) -> None:
        row = {"iteration": self.progress_in_iter + 1}
        row.update({name: meter.latest for name, meter in self.meter.get_filtered_meter("loss").items()})
        self.loss_history.append(row)
        super().after_iter()

    def after_epoch(self) -> None:
        started, samples = self.epoch_started
        img_per_s = (self.samples_seen - samples) / max(time.time() - started, 1e-9)
        logger.info(f"epoch {self.epoch + 1}/{self.max_epoch}: {img_per_s:.1f} img/s, batch {self.batch_size}, "
                    f"{self.policy.memory_line()}")
        super().after_epoch()
