"""The training loop: upstream YOLOX's lifecycle and hooks over parts that each own their state: DataStream
(loader, prefetcher, batch), TrainStep (forward, backward, guard, optimizer, EMA), Checkpointer, BudgetClock
(--time), RunEvaluation, WallClock. It reads the run's RunOptions, never the command line, and asks the device
policy for every device action (docs/architecture.md walks one step through the parts)."""
import os
import time
from typing import Any, Dict, List, Optional

import torch
from loguru import logger
from torch import nn
from torch.profiler import record_function

from yolox.core.budget import BudgetClock
from yolox.core.checkpointer import LATEST, Checkpointer, ResumePoint
from yolox.core.data_stream import DataStream
from yolox.core.evaluation import RunEvaluation
from yolox.core.exp_calls import build_evaluator, build_optimizer
from yolox.core.guards import NonFiniteGuard
from yolox.core.options import RunOptions
from yolox.core.progress_line import log_run_setup, progress_line
from yolox.core.rng_state import restore_rng_states, rng_states
from yolox.core.step import TrainStep
from yolox.core.training_errors import RanksOutOfMemory, TrainingDiverged, TrainingOutOfMemory, first_line
from yolox.core.wall_clock import WallClock
from yolox.utils.allreduce_norm import all_reduce_norm
from yolox.utils.device import DevicePolicy, build_policy
from yolox.utils.dist import get_local_rank, get_rank, get_world_size, synchronize
from yolox.utils.ema import unwrap_model
from yolox.utils.eval_history import read_eval_history, reset_eval_history
from yolox.utils.logger import build_metric_writer, setup_logger
from yolox.utils.metric import MeterBuffer, occupy_mem
from yolox.utils.model_utils import get_model_info
from yolox.utils.progress import terminal_bar

__all__ = ["Trainer", "TrainingDiverged", "TrainingOutOfMemory", "RanksOutOfMemory"]


class Trainer:
    """Runs one training job of `exp` with `options` on `policy`'s device.

    The trainer owns what it trains: the model (built by `build_model`), its optimizer and EMA. Each evaluation
    adds a row to `eval_history` and leaves its per-image detections in `last_eval_outputs`. Subclasses hook in
    through upstream's methods (before/after train, epoch and iter, `build_model`).
    """

    def __init__(self, exp, options: RunOptions, policy: Optional[DevicePolicy] = None) -> None:
        self.exp, self.options = exp, options
        self.world_size, self.rank, self.local_rank = get_world_size(), get_rank(), get_local_rank()
        self.is_distributed = self.world_size > 1
        if policy is None:      # an upstream-style exp's get_trainer(self, args) passes none
            policy = build_policy("auto", local_rank=self.local_rank, world_size=self.world_size)
        self.use_policy(policy)
        self.file_name = os.path.join(exp.output_dir, options.experiment_name)
        self.guard = NonFiniteGuard()
        self.checkpointer = Checkpointer(self.file_name, self.rank, self.guard, options.trust_ckpt,
                                         latest_every_s=exp.save_latest_every_s)
        self.meter = MeterBuffer(window_size=exp.print_interval)
        self.eval_history: List[Dict[str, Any]] = []
        self.input_size = tuple(exp.input_size)
        self.max_epoch, self.eval_interval = exp.max_epoch, exp.eval_interval
        self.start_epoch = self.epoch = self.iter = 0
        self.train_seconds = 0.0        # time in training iterations, evaluations excluded
        self.cache_releases = self.oom_recoveries = 0
        self.stop_requested = False
        self.clock: Optional[BudgetClock] = None
        self.wall, self.epoch_bar = WallClock(options.started_at), None
        if self.rank == 0:
            os.makedirs(self.file_name, exist_ok=True)
        setup_logger(self.file_name, distributed_rank=self.rank, filename="train_log.txt", mode="a")

    def use_policy(self, policy: DevicePolicy) -> None:
        """Train on `policy`'s device (before train(); yolox.utils.mps_patch hands a built trainer the MPS one)."""
        self.policy = policy
        self.device = policy.device
        self.amp_training = policy.amp_dtype is not None
        # inputs are cast like upstream only for float16; bfloat16 cannot hold pixel coordinates
        self.data_type = torch.float16 if policy.amp_dtype == torch.float16 else torch.float32
        self.scaler = policy.make_grad_scaler()

    # ------------------------------------------------------------------ the parts' state, by upstream's names
    model = property(lambda self: self.step.model, doc="the model trained (DDP-wrapped under several processes)")
    optimizer = property(lambda self: self.step.optimizer)
    ema_model = property(lambda self: self.step.ema, doc="the ModelEMA, None when the exp has ema off")
    batch_size = property(lambda self: self.stream.batch_size, doc="over all processes")
    per_rank_batch = property(lambda self: self.stream.per_rank_batch)
    samples_seen = property(lambda self: self.stream.samples_seen, doc="images this process has consumed")
    mosaic_closed = property(lambda self: self.stream.mosaic_closed)
    train_loader = property(lambda self: self.stream.loader)
    prefetcher = property(lambda self: self.stream.prefetcher)
    max_iter = property(lambda self: self.stream.iters_per_epoch)
    progress_in_iter = property(lambda self: self.epoch * self.max_iter + self.iter)
    evaluator = property(lambda self: self.evaluation.evaluator)
    best_ap = property(lambda self: self.evaluation.best_ap)
    best_epoch = property(lambda self: self.evaluation.best_epoch)
    last_eval_outputs = property(lambda self: self.evaluation.last_outputs, doc="{image id: detections}")

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
        self.wall.add("startup", self.wall.elapsed())
        self.epoch = self.start_epoch
        while self.epoch < self.max_epoch and not self.stop_requested:
            epoch_started = time.time()
            self.before_epoch()
            started = time.time()
            self.train_in_iter()
            steps_seconds = time.time() - started
            self.train_seconds += steps_seconds
            eval_before = self.wall.seconds["evaluation"]
            self.after_epoch()
            if self.clock is not None:
                evaluation = self.wall.seconds["evaluation"] - eval_before
                self.clock.record_epoch(time.time() - epoch_started - steps_seconds - evaluation)
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

    def _run_iter_or_recover(self) -> bool:
        """One step; on out-of-memory a smaller batch, and False so that the step is retried."""
        try:
            self.train_one_iter()
            return True
        except Exception as error:  # noqa: BLE001 - only out-of-memory errors are handled
            if not self.policy.is_oom(error):
                raise
            message = first_line(error)
        self._recover_from_oom(message)
        return False

    def train_one_iter(self) -> None:
        # the named ranges show up in torch.profiler traces (benchmarks/benchmark.py --profile)
        iter_start = time.time()
        with record_function("trainer.data"):
            inps, targets = self.stream.take()
            inps, targets = inps.to(self.data_type), targets.to(self.data_type)
            inps, targets = self.exp.preprocess(inps, targets, self.input_size)
            if self.policy.channels_last:
                inps = inps.contiguous(memory_format=torch.channels_last)
        data_seconds = time.time() - iter_start
        outputs = self.step(inps, targets)
        self.step.restore_if_needed(where=f"epoch {self.epoch + 1} iter {self.iter + 1}")
        preload_start = time.time()
        with record_function("trainer.data"):
            self.stream.preload()  # after the step is queued: the device computes while the host prepares
        data_seconds += time.time() - preload_start
        self.stream.consumed(inps.shape[0])
        lr = self.lr_scheduler.update_lr(self.progress_in_iter + 1) * self.guard.lr_scale
        self.step.set_lr(lr)
        iter_seconds = time.time() - iter_start
        self.wall.add("data_wait", data_seconds)
        self.wall.add("train_steps", iter_seconds - data_seconds)
        if self.clock is not None:
            self.clock.record_step(iter_seconds)
        self.meter.update(iter_time=iter_seconds, data_time=data_seconds, lr=lr,
                          **{name: value.detach() if torch.is_tensor(value) else value
                             for name, value in outputs.items()})

    def _recover_from_oom(self, message: str) -> None:
        """Halve the batch of every process (all ranks run this together) and continue at the same sample."""
        self.optimizer.zero_grad(set_to_none=True)
        self.policy.release_cache()
        old_batch = self.batch_size
        self.iter = self.stream.shrink(self.epoch_start_samples, message, self.input_size)
        self.lr_scheduler = self._lr_scheduler()
        self.oom_recoveries += 1
        logger.warning(f"Out of memory at batch size {old_batch} ({message}); continuing at batch size "
                       f"{self.batch_size} from epoch {self.epoch + 1} iter {self.iter + 1}/{self.max_iter}, "
                       f"base lr {self.exp.basic_lr_per_img * old_batch:.3e} -> "
                       f"{self.exp.basic_lr_per_img * self.batch_size:.3e}")

    def _lr_scheduler(self):
        return self.exp.get_lr_scheduler(self.exp.basic_lr_per_img * self.batch_size, self.max_iter)

    # ------------------------------------------------------------------ before training
    def before_train(self) -> None:
        self.use_policy(self.policy)
        self.exp.label_caps()  # caps left to the data are resolved and logged before the exp table shows them
        self.exp.resolve_device_augment(self.policy.batch_augment, self.policy.reasons["batch_augment"])
        log_run_setup(self.options, self.exp, self.policy)
        self.policy.set_current_device()
        self.policy.configure_backends()

        model = self.build_model()
        logger.info(f"Model Summary: {get_model_info(model, self.exp.test_size)}")
        model = self.policy.place_model(model)
        optimizer = build_optimizer(self.exp, self.options.batch_size, model, self.policy)
        resume = self.checkpointer.load_weights(self.options, model, optimizer)
        if resume is not None:
            self.start_epoch, self.train_seconds = resume.start_epoch, resume.train_seconds
            if resume.exact:
                self.input_size = tuple(resume.state.get("input_size", self.input_size))
        self._start_stream(resume)
        self.lr_scheduler = self._lr_scheduler()
        logger.info("init prefetcher, this might take one minute or less...")
        if self.options.occupy:
            occupy_mem(self.policy)
        if resume is not None and resume.exact and resume.state.get("scaler"):
            self.scaler.load_state_dict(resume.state["scaler"])
        self.step = TrainStep.build(model, optimizer, self.policy, self.scaler, self.guard, self.exp, resume,
                                    self.max_iter * self.start_epoch, self.is_distributed)
        evaluator = build_evaluator(self.exp, self.batch_size, self.is_distributed, self.policy)
        self.evaluation = RunEvaluation(self.exp, evaluator, self.policy, self.file_name, self.rank,
                                        self.is_distributed, **({"best_ap": resume.best_ap,
                                                                 "best_epoch": resume.best_epoch} if resume else {}))
        self.metric_writer = build_metric_writer(self.options.logger, self.file_name) if self.rank == 0 else None
        if resume is not None and resume.exact and "rng" in resume.state:
            restore_rng_states(resume.state["rng"], self.policy)
        if self.rank == 0:
            reset_eval_history(self.file_name, keep_through_epoch=self.start_epoch if resume else 0)
        self.clock = BudgetClock.for_run(self.options, resume.budget if resume else {}, self.exp)
        self.stop_requested = self.clock is not None and self.clock.left() <= 0
        self._evaluate_if_missed(resume)
        logger.info("Training start...")
        logger.info(f"\n{model}")

    def build_model(self) -> nn.Module:
        """The model this run trains, new from the exp (subclasses add to it, e.g. gradient checkpointing)."""
        return self.exp.get_model()

    def _start_stream(self, resume: Optional[ResumePoint]) -> None:
        self.no_aug = self.start_epoch >= self.max_epoch - self.exp.no_aug_epochs
        self.stream = DataStream.for_run(self.exp, self.policy, self.options, self.world_size, resume,
                                         self.start_epoch, self.no_aug)

    def _evaluate_if_missed(self, resume: Optional[ResumePoint]) -> None:
        """A run stopped during an evaluation resumes after that epoch: evaluate it now, as an unbroken run did."""
        if resume is None or self.start_epoch == 0:
            return
        due = self.eval_due(self.start_epoch) or self.start_epoch >= self.max_epoch or self.mosaic_closed
        if not due or any(row["epoch"] == self.start_epoch for row in read_eval_history(self.file_name)):
            return
        logger.info(f"epoch {self.start_epoch} was not evaluated before the run stopped: evaluating it now")
        self.epoch, self.iter = self.start_epoch - 1, self.max_iter - 1     # where the unbroken run evaluated it
        self.evaluate_and_save_model()
        self.epoch, self.iter = self.start_epoch, 0

    def after_train(self) -> None:
        self.guard.flush()
        if hasattr(self, "evaluation"):
            logger.info(f"Training of experiment is done and the best AP is {self.best_ap * 100:.2f}")
        logger.info(f"guard: {self.guard.counts.line()}")
        if hasattr(self, "stream"):
            with self.wall.phase("teardown"):
                self.stream.close()
        if self.rank == 0 and hasattr(self, "stream"):   # a run that failed before its data started has no figures
            self.wall.write(self.file_name, budget_s=self.options.time_budget_s, epochs=self.epoch + 1,
                            iterations=self.progress_in_iter + 1, images=self.samples_seen * self.world_size,
                            batch_size=self.batch_size)
        if self.clock is not None:
            logger.info(self.clock.closing_line())
        if getattr(self, "metric_writer", None) is not None:
            self.metric_writer.close()

    # ------------------------------------------------------------------ epochs and iterations
    def before_epoch(self) -> None:
        logger.info(f"---> start train epoch{self.epoch + 1}")
        # a bar on a terminal; the log lines of _log_progress serve every other output
        self.epoch_bar = terminal_bar(self.max_iter, desc=f"epoch {self.epoch + 1}/{self.max_epoch}") \
            if self.rank == 0 else None
        self.epoch_start_samples = self.samples_seen
        # upstream closes mosaic one epoch before the last no_aug_epochs (0-based epoch max_epoch - no_aug_epochs
        # - 1); with 0 that would still close it for the final epoch, which on THEMIS cost up to 0.1 AP50 there:
        # a schedule that asks for no no-aug epochs gets none
        switch_epoch = self.exp.no_aug_epochs > 0 and self.epoch + 1 == self.max_epoch - self.exp.no_aug_epochs
        if not (switch_epoch or self.no_aug):
            return
        logger.info("--->No mosaic aug now!")
        self.stream.close_mosaic()
        if self.exp.l1_in_no_aug:
            logger.info("--->Add additional L1 loss now!")
            unwrap_model(self.model).head.use_l1 = True
        self.eval_interval = 1
        if not self.no_aug:
            self.save_ckpt(ckpt_name="last_mosaic_epoch")

    def after_epoch(self) -> None:
        if self.epoch_bar is not None:
            self.epoch_bar.close()
        skipped = self.stream.skipped_images()
        if skipped:
            logger.warning(f"epoch {self.epoch + 1}: {len(skipped)} training image(s) unreadable since the dataset "
                           f"check were skipped: {', '.join(skipped[:20])}")
        # every rank ends the epoch with the same BatchNorm statistics, live and EMA (DDP keeps them per rank):
        # the checkpoint rank 0 writes is then every rank's state, so a resumed multi-process run is exact,
        # and all ranks evaluate one model
        all_reduce_norm(self.model)
        if self.ema_model is not None:
            all_reduce_norm(self.ema_model.ema)
        # the last epoch (also one the time budget ends) is always evaluated: the final figure must not be older
        last = self.epoch + 1 == self.max_epoch or self.stop_requested
        if self.checkpointer.latest_due(last):
            self.save_ckpt(ckpt_name=LATEST)
        if self.eval_due(self.epoch + 1) or last:
            self.evaluate_and_save_model()

    def eval_due(self, epoch: int) -> bool:
        """Whether 1-based `epoch` is evaluated: every eval_interval epochs counted back from the last."""
        return (self.max_epoch - epoch) % self.eval_interval == 0

    def before_iter(self) -> None:
        pass

    def after_iter(self) -> None:
        if self.epoch_bar is not None:
            self.epoch_bar.update()
        if (self.iter + 1) % self.exp.print_interval == 0 or self.iter + 1 == self.max_iter:
            with self.wall.phase("host_sync"):
                self.log_progress()
        if (self.progress_in_iter + 1) % 10 == 0:
            self.input_size = self.exp.random_resize(self.train_loader, self.epoch, self.rank, self.is_distributed)
        every = self.policy.cache_release_every
        if every and (self.progress_in_iter + 1) % every == 0:
            self.policy.release_cache()
            self.cache_releases += 1
        if self.clock is not None and not self.stop_requested:
            self._follow_clock()

    def _follow_clock(self) -> None:
        plan, self.stop_requested = self.clock.after_iter(self.epoch, self.iter, self.max_iter, self.max_epoch,
                                                          self.evaluation.batches)
        if plan is not None:
            self.clock.apply(plan, self.exp, self.max_iter, self.ema_model)
            self.max_epoch, self.eval_interval = self.exp.max_epoch, self.exp.eval_interval
            self.lr_scheduler = self._lr_scheduler()

    def log_progress(self) -> None:
        """The progress line at each print interval and epoch end: the only host read of the step's losses."""
        left_iters = self.max_iter * self.max_epoch - (self.progress_in_iter + 1)
        skipped = len(self.stream.skipped_images())
        line, losses, lr = progress_line(self.meter, self.epoch, self.max_epoch, self.iter, self.max_iter,
                                         left_iters, self.batch_size, self.input_size[0],
                                         self.policy.memory_line(), skipped, self.guard)
        logger.info(line)
        if self.metric_writer is not None:
            self.metric_writer.add_scalars({"train/lr": lr, **{f"train/{k}": v for k, v in losses.items()}},
                                           self.progress_in_iter)
        self.meter.clear_meters()

    # ------------------------------------------------------------------ evaluation and checkpoints
    def evaluate_and_save_model(self) -> None:
        eval_model = self.ema_model.ema if self.ema_model is not None else unwrap_model(self.model)
        progress = {"no_aug": bool(self.mosaic_closed), "iteration": self.progress_in_iter + 1,
                    "samples_seen": self.samples_seen, "train_seconds": round(self.train_seconds, 3)}
        with self.wall.phase("evaluation"):
            row = self.evaluation.run(eval_model, self.epoch + 1, progress, self.guard.counts.skipped_steps)
        if self.metric_writer is not None:
            ap = {"val/COCOAP50": row["AP50"], "val/COCOAP50_95": row["AP50:95"]}
            self.metric_writer.add_scalars(ap, self.epoch + 1)
        if self.clock is not None:
            self.clock.record_eval(self.evaluation.last_seconds)
        synchronize()
        # the final checkpoint at the run's end, the best at each new best; the history files where the exp asks
        if self.epoch + 1 == self.max_epoch or self.stop_requested:
            self.save_ckpt("last_epoch", row["best"], ap=row["AP50:95"])
        elif row["best"]:
            self.save_ckpt("best", ap=row["AP50:95"])
        self.evaluation.record(row)
        self.eval_history.append(row)
        if self.exp.save_history_ckpt:
            self.save_ckpt(f"epoch_{self.epoch + 1}", ap=row["AP50:95"])

    def save_ckpt(self, ckpt_name: str, update_best_ckpt: bool = False, ap: Optional[float] = None) -> None:
        """Write `<ckpt_name>_ckpt.pth` (rank 0 only); weights holding NaN or inf are refused and counted."""
        if self.rank == 0:
            started = time.perf_counter()
            with self.wall.phase("checkpoints"):
                self.checkpointer.save(ckpt_name, self.training_state(ap), best=update_best_ckpt)
            if self.clock is not None:
                self.clock.record_checkpoint(time.perf_counter() - started)

    def training_state(self, ap: Optional[float]) -> Dict[str, Any]:
        """Upstream's checkpoint keys, and what an exact resume needs beyond them: each part's own state."""
        state: Dict[str, Any] = {"start_epoch": self.epoch + 1, **self.step.state(), "curr_ap": ap,
                                 "train_seconds": self.train_seconds, "samples_seen": self.samples_seen,
                                 "iteration": self.progress_in_iter + 1, "batch_size": self.batch_size,
                                 "input_size": list(self.input_size), "rng": rng_states(self.policy),
                                 **self.evaluation.best_state()}
        return {**state, **(self.clock.checkpoint_fields() if self.clock is not None else {})}
