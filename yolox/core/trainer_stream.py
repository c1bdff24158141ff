"""The Trainer's data stream: the loader at a sample position, and a smaller batch when memory runs out."""
from loguru import logger

from yolox.core.training_errors import TrainingOutOfMemory, first_line
from yolox.data.data_prefetcher import DataPrefetcher
from yolox.utils.compat import accepts_keyword, call_with_supported

__all__ = ["StreamSteps"]


class StreamSteps:
    """Trainer methods that (re)build the train loader and recover from out-of-memory steps."""

    def _run_iter_or_recover(self) -> bool:
        """One step; on out-of-memory shrink the batch and report False so the step is retried."""
        try:
            self.train_one_iter()
            return True
        except Exception as error:  # noqa: BLE001 - only out-of-memory errors are handled
            if not self.policy.is_oom(error):
                raise
            message = first_line(error)
        self._recover_from_oom(message)
        return False

    def skipped_images(self) -> list:
        """Paths of training images that became unreadable after the dataset check (skipped, replaced)."""
        skipped = getattr(self._base_dataset, "skipped", None)
        if skipped is None:
            return []
        return [self._base_dataset.image_path(i) if hasattr(self._base_dataset, "image_path") else str(i)
                for i in skipped.indices()]

    def _start_stream(self) -> None:
        """(Re)build the train loader at the current stream position, its prefetcher, the
        iterations per epoch and the LR schedule for the current batch size."""
        if self._base_dataset is not None:
            self.exp.dataset = self._base_dataset  # the exp wraps its dataset for mosaic each time
        if self.samples_seen and not accepts_keyword(self.exp.get_data_loader, "start"):
            logger.warning("this exp's get_data_loader takes no `start`: the data stream restarts from its "
                           "beginning, so a resumed run is not sample-exact")
        self.train_loader = call_with_supported(
            self.exp.get_data_loader, batch_size=self.batch_size, is_distributed=self.is_distributed,
            no_aug=self.mosaic_closed, cache_img=getattr(self.args, "cache", None),
            optional={"start": self.samples_seen, "policy": self.policy})
        if self._base_dataset is None:
            self._base_dataset = getattr(self.train_loader.dataset, "_dataset", None)
        self.max_iter = len(self.train_loader)
        self.lr_scheduler = self.exp.get_lr_scheduler(self.exp.basic_lr_per_img * self.batch_size, self.max_iter)
        self.prefetcher = DataPrefetcher(self.train_loader, self.policy)

    def _recover_from_oom(self, message: str) -> None:
        """Halve the batch of every process (all ranks run this together) and continue at the same sample."""
        if self.per_rank_batch <= 1:
            raise TrainingOutOfMemory(
                f"Out of memory at batch size {self.batch_size} (input size {self.input_size}): {message}. "
                "Cannot shrink the batch below one image per process: lower input_size/test_size in the exp "
                "or use a smaller model.")
        self.optimizer.zero_grad(set_to_none=True)
        self.policy.release_cache()
        epoch_samples = self.samples_seen - self.epoch_start_samples
        old_batch, old_lr = self.batch_size, self.exp.basic_lr_per_img * self.batch_size
        self.batch_size = max(self.per_rank_batch // 2, 1) * self.world_size
        self._start_stream()
        self.iter = epoch_samples // self.per_rank_batch
        self.oom_recoveries += 1
        logger.warning(f"Out of memory at batch size {old_batch} ({message}); continuing at batch size "
                       f"{self.batch_size} from epoch {self.epoch + 1} iter {self.iter + 1}/{self.max_iter}, "
                       f"base lr {old_lr:.3e} -> {self.exp.basic_lr_per_img * self.batch_size:.3e}")
