"""Training loop: upstream YOLOX's lifecycle, with every device action asked of the device policy."""
import datetime
import os
import time
from typing import Any, Dict, List, Optional

import torch
from loguru import logger
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.profiler import record_function

from yolox.core.budget_schedule import BudgetRun
from yolox.core.eval_crosscheck import cross_check_first_batch
from yolox.core.guards import NonFiniteGuard
from yolox.core.rng_state import restore_rng_states
from yolox.core.trainer_budget import BudgetSteps
from yolox.core.trainer_checkpoints import CheckpointSteps
from yolox.core.trainer_stream import StreamSteps
from yolox.core.training_errors import RanksOutOfMemory, TrainingDiverged, TrainingOutOfMemory
from yolox.utils.allreduce_norm import all_reduce_norm
from yolox.utils.compat import call_with_supported
from yolox.utils.device import DevicePolicy
from yolox.utils.dist import average_gradients, get_local_rank, get_rank, get_world_size, ranks_where, synchronize
from yolox.utils.ema import RAMP_UPDATES, ModelEMA, unwrap_model
from yolox.utils.eval_history import append_eval, reset_eval_history
from yolox.utils.logger import build_metric_writer, setup_logger
from yolox.utils.metric import MeterBuffer, occupy_mem
from yolox.utils.model_utils import adjust_status, get_model_info
from yolox.utils.progress import terminal_bar

__all__ = ["Trainer", "TrainingDiverged", "TrainingOutOfMemory", "RanksOutOfMemory"]

EMA_DECAY = 0.9998


class Trainer(StreamSteps, CheckpointSteps, BudgetSteps):
    """Runs one training job of `exp` with the CLI namespace `args` on `policy`'s device.

    The trainer owns what it trains: the model (built by `build_model`), its optimizer and EMA. Each evaluation
    adds a row to `eval_history` (epoch, AP50, AP50:95, best, ...) and leaves its per-image detections in
    `last_eval_outputs`.
    """

    def __init__(self, exp, args, policy: DevicePolicy):
        self.exp = exp
        self.args = args
        self.world_size = get_world_size()
        self.rank = get_rank()
        self.epoch_bar = None
        self.local_rank = get_local_rank()
        self.is_distributed = self.world_size > 1
        self.policy = policy
        self.device = policy.device
        self.eval_history: List[Dict[str, Any]] = []
        self.last_eval_outputs: Dict[int, dict] = {}

        self.max_epoch = exp.max_epoch
        self.amp_training = policy.amp_dtype is not None
        self.scaler = policy.make_grad_scaler()
        # inputs are cast like upstream only for float16; bfloat16 cannot hold pixel coordinates
        self.data_type = torch.float16 if policy.amp_dtype == torch.float16 else torch.float32
        self.use_model_ema = exp.ema
        self.save_history_ckpt = exp.save_history_ckpt
        self.batch_size = args.batch_size
        self.input_size = tuple(exp.input_size)
        self.best_ap = 0.0
        self.best_epoch = 0
        self.train_seconds = 0.0  # time in training iterations, evaluations excluded
        self.start_epoch = 0
        self.epoch = 0
        self.iter = 0
        self.max_iter = 0
        self.samples_seen = 0
        self.mosaic_closed = False
        self.cache_releases = 0
        self.oom_recoveries = 0
        self.guard = NonFiniteGuard()
        self.budget: Optional[BudgetRun] = None
        self.resumed_budget: Dict[str, float] = {}
        self.stop_requested = False
        self._resume_state: Dict[str, Any] = {}
        self._resumed = False
        self._base_dataset = None
        self.meter = MeterBuffer(window_size=exp.print_interval)
        self.file_name = os.path.join(exp.output_dir, args.experiment_name)
        if self.rank == 0:
            os.makedirs(self.file_name, exist_ok=True)
        setup_logger(self.file_name, distributed_rank=self.rank, filename="train_log.txt", mode="a")

    # ------------------------------------------------------------------ lifecycle
    def train(self) -> None:
        self.before_train()
        try:
            self.train_in_epoch()
        except Exception as error:
            logger.error(f"Training stopped at epoch {self.epoch + 1}, iter {self.iter + 1}: "
                         f"{type(error).__name__}: {error}")
            raise
        finally:
            self.after_train()

    def train_in_epoch(self) -> None:
        self.epoch = self.start_epoch
        while self.epoch < self.max_epoch and not self.stop_requested:
            self.before_epoch()
            started = time.time()
            self.train_in_iter()
            self.train_seconds += time.time() - started
            self.after_epoch()
            self.epoch += 1
        self.epoch = max(self.epoch - 1, self.start_epoch)

    def train_in_iter(self) -> None:
        self.iter = 0
        while self.iter < self.max_iter:
            self.before_iter()
            if not self._run_iter_or_recover():
                continue
            self.after_iter()
            if self.iter == self.max_iter - 1 or self.stop_requested:
                break  # like upstream's for-loop, hooks after the epoch see the last iter index
            self.iter += 1

    @property
    def progress_in_iter(self) -> int:
        return self.epoch * self.max_iter + self.iter

    @property
    def per_rank_batch(self) -> int:
        return self.batch_size // self.world_size

    def train_one_iter(self) -> None:
        # the named ranges show up in torch.profiler traces (benchmarks/benchmark.py --profile)
        iter_start = time.time()
        with record_function("trainer.data"):
            inps, targets = self.prefetcher.take()
            inps = inps.to(self.data_type)
            targets = targets.to(self.data_type)
            targets.requires_grad = False
            inps, targets = self.exp.preprocess(inps, targets, self.input_size)
            if self.policy.channels_last:
                inps = inps.contiguous(memory_format=torch.channels_last)
        data_seconds = time.time() - iter_start

        with record_function("trainer.forward_backward"):
            outputs = self._forward_backward(inps, targets)
        if self.guard.step_is_finite(outputs["total_loss"], self.model, check_grads=not self.scaler.is_enabled()):
            self._apply_step()
        else:
            self._skip_step()
        preload_start = time.time()
        with record_function("trainer.data"):
            self.prefetcher.preload()  # after the step is queued: the device computes while the host prepares
        data_seconds += time.time() - preload_start
        lr = self.lr_scheduler.update_lr(self.progress_in_iter + 1) * self.guard.lr_scale
        for param_group in self.optimizer.param_groups:
            param_group["lr"] = lr
        self.samples_seen += inps.shape[0]
        iter_end = time.time()
        if self.budget is not None:
            self.budget.keeper.record_iter(iter_end - iter_start)
        self.meter.update(iter_time=iter_end - iter_start, data_time=data_seconds, lr=lr,
                          **{name: value.detach() if torch.is_tensor(value) else value
                             for name, value in outputs.items()})

    def _apply_step(self) -> None:
        with record_function("trainer.optimizer"):
            self.scaler.step(self.optimizer)
            self.scaler.update()
        ema = self.ema_model.ema if self.use_model_ema else None
        if self.use_model_ema:
            with record_function("trainer.ema"):
                self.ema_model.update(self.model)
        self.guard.after_good_step(unwrap_model(self.model), self.optimizer, ema)

    def _skip_step(self) -> None:
        """A non-finite loss or gradient: no update; several in a row go back to the last good state."""
        self.optimizer.zero_grad(set_to_none=True)
        if self.guard.needs_restore():
            ema = self.ema_model.ema if self.use_model_ema else None
            self.guard.restore(unwrap_model(self.model), self.optimizer, ema,
                               where=f"epoch {self.epoch + 1} iter {self.iter + 1}")

    def _local_forward_backward(self, inps: torch.Tensor, targets: torch.Tensor) -> Dict[str, Any]:
        """Losses of this process's batch, its gradients left in .grad (scaled when the policy scales)."""
        with self.policy.autocast():
            outputs = self.model(inps, targets)
        self.optimizer.zero_grad()
        self.scaler.scale(outputs["total_loss"]).backward()
        return outputs

    def _forward_backward(self, inps: torch.Tensor, targets: torch.Tensor) -> Dict[str, Any]:
        """Loss and gradients; across processes the gradients are averaged only after every rank has its own.

        DDP all-reduces during backward, so a rank out of memory there would leave the others waiting in that
        collective. Here all ranks first agree whether any ran out of memory, then all either average or retry
        together (the cost: gradient communication no longer overlaps backward).
        """
        if not self.is_distributed:
            return self._local_forward_backward(inps, targets)
        local_error = None
        try:
            with self.model.no_sync():
                outputs = self._local_forward_backward(inps, targets)
        except Exception as error:  # noqa: BLE001 - only out-of-memory errors are agreed on
            if not self.policy.is_oom(error):
                raise
            local_error = error
        failed = ranks_where(local_error is not None)
        if failed:
            raise RanksOutOfMemory(failed, local_error) from local_error
        average_gradients(self.model.parameters())
        return outputs

    def before_train(self) -> None:
        logger.info(f"args: {self.args}")
        self.exp.label_caps()  # caps left to the data are resolved and logged before the exp table shows them
        self.exp.resolve_device_augment(self.policy.batch_augment, self.policy.reasons["batch_augment"])
        logger.info(f"exp value:\n{self.exp}")
        for line in self.policy.describe():
            logger.info(f"device policy: {line}")
        self.policy.set_current_device()
        self.policy.configure_backends()

        model = self.build_model()
        logger.info(f"Model Summary: {get_model_info(model, self.exp.test_size)}")
        model = self.policy.place_model(model)
        self.optimizer = call_with_supported(self.exp.get_optimizer, self.batch_size,
                                             optional={"model": model, "policy": self.policy})
        model = self.resume_train(model)
        self.model = model

        self.no_aug = self.start_epoch >= self.max_epoch - self.exp.no_aug_epochs
        self.mosaic_closed = self.no_aug
        self._start_stream()
        if self._resumed and not self._resume_state:
            self._align_stream_with_epoch()
        logger.info("init prefetcher, this might take one minute or less...")
        if getattr(self.args, "occupy", False):
            occupy_mem(self.policy)
        if self.is_distributed:
            device_ids = [self.device.index] if self.device.type == "cuda" else None
            self.model = DDP(self.model, device_ids=device_ids, broadcast_buffers=False)
        if self.use_model_ema:
            self.ema_model = ModelEMA(self.model, getattr(self.exp, "ema_decay", EMA_DECAY),
                                      ramp_updates=getattr(self.exp, "ema_ramp_updates", RAMP_UPDATES))
            self._restore_ema()
        self.model.train()
        compiled = self.policy.compile_model_parts(unwrap_model(self.model))  # after the EMA copy, which stays eager
        if compiled:
            logger.info(f"compiling {compiled} part(s) of the model (the first steps at each new size take longer)")

        self.evaluator = call_with_supported(self.exp.get_evaluator, batch_size=self.batch_size,
                                             is_distributed=self.is_distributed, optional={"policy": self.policy})
        self.metric_writer = None
        if self.rank == 0:
            self.metric_writer = build_metric_writer(getattr(self.args, "logger", "tensorboard"), self.file_name)
        if "rng" in self._resume_state:
            restore_rng_states(self._resume_state["rng"], self.policy)
        if self.rank == 0:
            reset_eval_history(self.file_name, keep_through_epoch=self.start_epoch if self._resumed else 0)
        self._start_budget()
        self._evaluate_if_missed()
        logger.info("Training start...")
        logger.info(f"\n{model}")

    def build_model(self) -> nn.Module:
        """The model this run trains, new from the exp (subclasses add to it, e.g. gradient checkpointing)."""
        return self.exp.get_model()

    def after_train(self) -> None:
        logger.info(f"Training of experiment is done and the best AP is {self.best_ap * 100:.2f}")
        logger.info(f"guard: {self.guard.counts.line()}")
        self._budget_closing_line()
        if getattr(self, "metric_writer", None) is not None:
            self.metric_writer.close()

    def before_epoch(self) -> None:
        logger.info(f"---> start train epoch{self.epoch + 1}")
        # a bar on a terminal; the log lines of _log_progress serve every other output
        self.epoch_bar = terminal_bar(self.max_iter, desc=f"epoch {self.epoch + 1}/{self.max_epoch}") \
            if self.rank == 0 else None
        self.epoch_start_samples = self.samples_seen
        # upstream closes mosaic one epoch before the last no_aug_epochs (0-based epoch
        # max_epoch - no_aug_epochs - 1); with 0 that would still close it for the final epoch, which on
        # THEMIS cost up to 0.1 AP50 there: a schedule that asks for no no-aug epochs gets none
        switch_epoch = self.exp.no_aug_epochs > 0 and self.epoch + 1 == self.max_epoch - self.exp.no_aug_epochs
        if not (switch_epoch or self.no_aug):
            return
        logger.info("--->No mosaic aug now!")
        if not self.mosaic_closed:
            # a fresh loader at the current stream position (not close_mosaic on the old one)
            # so no batch prefetched with mosaic leaks into this epoch: resuming here is exact
            self.mosaic_closed = True
            self._start_stream()
        if getattr(self.exp, "l1_in_no_aug", True):
            logger.info("--->Add additional L1 loss now!")
            unwrap_model(self.model).head.use_l1 = True
        self.exp.eval_interval = 1
        if not self.no_aug:
            self.save_ckpt(ckpt_name="last_mosaic_epoch")

    def after_epoch(self) -> None:
        if self.epoch_bar is not None:
            self.epoch_bar.close()
        skipped = self.skipped_images()
        if skipped:
            logger.warning(f"epoch {self.epoch + 1}: {len(skipped)} training image(s) unreadable since the dataset "
                           f"check were skipped: {', '.join(skipped[:20])}")
        # every rank ends the epoch with the same BatchNorm statistics, live and EMA (DDP keeps them per rank):
        # the checkpoint rank 0 writes is then every rank's state, so a resumed multi-process run is exact,
        # and all ranks evaluate one model
        all_reduce_norm(self.model)
        if self.use_model_ema:
            all_reduce_norm(self.ema_model.ema)
        self.save_ckpt(ckpt_name="latest")
        # the last epoch (also one the time budget ends) is always evaluated: the final figure must not be older
        last = self.epoch + 1 == self.max_epoch or self.stop_requested
        if (self.epoch + 1) % self.exp.eval_interval == 0 or last:
            self.evaluate_and_save_model()

    def before_iter(self) -> None:
        pass

    def after_iter(self) -> None:
        if self.epoch_bar is not None:
            self.epoch_bar.update()
        if (self.iter + 1) % self.exp.print_interval == 0:
            self._log_progress()
        if (self.progress_in_iter + 1) % 10 == 0:
            self.input_size = self.exp.random_resize(self.train_loader, self.epoch, self.rank, self.is_distributed)
        every = self.policy.cache_release_every
        if every and (self.progress_in_iter + 1) % every == 0:
            self.policy.release_cache()
            self.cache_releases += 1
        self._budget_after_iter()

    def _log_progress(self) -> None:
        left_iters = self.max_iter * self.max_epoch - (self.progress_in_iter + 1)
        eta_seconds = self.meter["iter_time"].global_avg * left_iters
        eta_str = f"ETA: {datetime.timedelta(seconds=int(eta_seconds))}"
        progress_str = f"epoch: {self.epoch + 1}/{self.max_epoch}, iter: {self.iter + 1}/{self.max_iter}"
        time_str = ", ".join(f"{k}: {v.avg:.3f}s" for k, v in self.meter.get_filtered_meter("time").items())
        losses = {k: v.latest for k, v in self.meter.get_filtered_meter("loss").items()}
        loss_str = ", ".join(f"{k}: {v:.1f}" for k, v in losses.items())
        lr = self.meter["lr"].latest
        img_per_s = self.per_rank_batch * self.world_size / max(self.meter["iter_time"].avg, 1e-9)
        skipped = self.skipped_images()
        skipped_str = f", skipped images: {len(skipped)}" if skipped else ""
        if self.guard.counts.skipped_steps:
            skipped_str += f", {self.guard.counts.line()}"
        logger.info(f"{progress_str}, {self.policy.memory_line()}, {time_str}, {loss_str}, lr: {lr:.3e}"
                    f", size: {self.input_size[0]:d}, {img_per_s:.1f} img/s{skipped_str}, {eta_str}")
        if self.metric_writer is not None:
            scalars = {"train/lr": lr, **{f"train/{k}": v for k, v in losses.items()}}
            self.metric_writer.add_scalars(scalars, self.progress_in_iter)
        self.meter.clear_meters()

    def evaluate_and_save_model(self) -> None:
        eval_model = self.ema_model.ema if self.use_model_ema else unwrap_model(self.model)
        started = time.time()
        with adjust_status(eval_model, training=False):
            cpu_check = cross_check_first_batch(eval_model, self.evaluator.dataloader, self.policy) \
                if self.rank == 0 else None
            (ap50_95, ap50, summary), self.last_eval_outputs = call_with_supported(
                self.exp.eval, eval_model, self.evaluator, self.is_distributed, return_outputs=True,
                optional={"policy": self.policy})
        # unlike upstream, the first evaluation also writes best_ckpt.pth when AP is still 0, so
        # tools/eval.py and demo.py find their default checkpoint after any evaluated run
        first_best = not os.path.exists(os.path.join(self.file_name, "best_ckpt.pth"))
        update_best = ap50_95 > self.best_ap or first_best
        self.best_ap = max(self.best_ap, ap50_95)
        if update_best:
            self.best_epoch = self.epoch + 1
        if self.rank == 0:
            if self.metric_writer is not None:
                self.metric_writer.add_scalars({"val/COCOAP50": ap50, "val/COCOAP50_95": ap50_95}, self.epoch + 1)
            logger.info("\n" + str(summary))
        if cpu_check is not None and not cpu_check["agree"]:
            logger.warning(f"evaluation on {self.policy.device} disagrees with the CPU on the first batch: boxes "
                           f"differ by up to {cpu_check['max_box_diff_px']} px (tolerance "
                           f"{cpu_check['box_tolerance_px']}), scores by {cpu_check['max_score_diff']} (tolerance "
                           f"{cpu_check['score_tolerance']}); run tools/check_device.py")
        if self.budget is not None:
            self.budget.keeper.record_eval(time.time() - started)
        synchronize()
        self.save_ckpt("last_epoch", update_best, ap=ap50_95)
        row = {"epoch": self.epoch + 1, "AP50": float(ap50), "AP50:95": float(ap50_95), "best": bool(update_best),
               "no_aug": bool(self.mosaic_closed), "iteration": self.progress_in_iter + 1,
               "samples_seen": self.samples_seen, "train_seconds": round(self.train_seconds, 3)}
        if cpu_check is not None:
            row["cpu_cross_check"] = cpu_check
        self.eval_history.append(row)
        if self.rank == 0:
            append_eval(self.file_name, row)
        if self.save_history_ckpt:
            self.save_ckpt(f"epoch_{self.epoch + 1}", ap=ap50_95)
