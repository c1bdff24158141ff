"""Training loop: upstream YOLOX's lifecycle, with every device action asked of the device policy."""
import datetime
import math
import os
import random
import time
from typing import Any, Dict, List, Optional

import numpy as np
import torch
from loguru import logger
from torch.nn.parallel import DistributedDataParallel as DDP
from torch import nn
from torch.profiler import record_function

from yolox.data.data_prefetcher import DataPrefetcher
from yolox.utils.allreduce_norm import all_reduce_norm
from yolox.utils.checkpoint import load_checkpoint_file, load_ckpt, save_checkpoint
from yolox.utils.compat import accepts_keyword, call_with_supported
from yolox.utils.device import DevicePolicy
from yolox.utils.dist import average_gradients, get_local_rank, get_rank, get_world_size, ranks_where, synchronize
from yolox.utils.ema import RAMP_UPDATES, ModelEMA, unwrap_model
from yolox.utils.eval_history import append_eval, reset_eval_history
from yolox.utils.logger import build_metric_writer, setup_logger
from yolox.utils.metric import MeterBuffer, occupy_mem
from yolox.utils.model_utils import adjust_status, get_model_info
from yolox.utils.progress import terminal_bar

__all__ = ["Trainer", "TrainingOutOfMemory", "RanksOutOfMemory"]

EMA_DECAY = 0.9998


NONFINITE_LOG_WINDOWS = 3  # consecutive log windows with a NaN/inf loss before the run is stopped


class TrainingDiverged(RuntimeError):
    """The training loss stayed non-finite: continuing would only waste the machine."""


class TrainingOutOfMemory(RuntimeError):
    """Out of memory even at one image per process."""


class RanksOutOfMemory(torch.OutOfMemoryError):
    """Raised on every rank of a multi-process run when at least one rank ran out of memory in a step."""

    def __init__(self, ranks: List[int], local_error: Optional[BaseException]):
        detail = f": {_first_line(local_error)}" if local_error is not None else ""
        super().__init__(f"out of memory on rank{'s' if len(ranks) > 1 else ''} "
                         f"{', '.join(map(str, ranks))}{detail}")
        self.ranks = ranks


def _first_line(error: BaseException) -> str:
    return str(error).splitlines()[0] if str(error) else type(error).__name__


def _arg(args, name: str, default=None):
    return getattr(args, name, default)


def rng_states(policy) -> Dict[str, Any]:
    """Python, NumPy, torch and device RNG states, stored as plain containers and tensors so a
    safe checkpoint load can read them back."""
    version, py_state, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    states = {
        "python": [version, list(py_state), gauss],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
        "device": policy.rng_state(),
    }
    return states


def restore_rng_states(states: Dict[str, Any], policy) -> None:
    version, py_state, gauss = states["python"]
    random.setstate((version, tuple(py_state), gauss))
    kind, keys, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(states["torch"])
    policy.set_rng_state(states.get("device"))


class Trainer:
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
        self.nonfinite_windows = 0
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
        for self.epoch in range(self.start_epoch, self.max_epoch):
            self.before_epoch()
            started = time.time()
            self.train_in_iter()
            self.train_seconds += time.time() - started
            self.after_epoch()

    def train_in_iter(self) -> None:
        self.iter = 0
        while self.iter < self.max_iter:
            self.before_iter()
            if not self._run_iter_or_recover():
                continue
            self.after_iter()
            if self.iter == self.max_iter - 1:
                break  # like upstream's for-loop, hooks after the epoch see the last iter index
            self.iter += 1

    def _run_iter_or_recover(self) -> bool:
        """One step; on out-of-memory shrink the batch and report False so the step is retried."""
        try:
            self.train_one_iter()
            return True
        except Exception as error:  # noqa: BLE001 - only out-of-memory errors are handled
            if not self.policy.is_oom(error):
                raise
            message = _first_line(error)
        self._recover_from_oom(message)
        return False

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
        with record_function("trainer.optimizer"):
            self.scaler.step(self.optimizer)
            self.scaler.update()
        if self.use_model_ema:
            with record_function("trainer.ema"):
                self.ema_model.update(self.model)
        preload_start = time.time()
        with record_function("trainer.data"):
            self.prefetcher.preload()  # after the step is queued: the device computes while the host prepares
        data_seconds += time.time() - preload_start
        lr = self.lr_scheduler.update_lr(self.progress_in_iter + 1)
        for param_group in self.optimizer.param_groups:
            param_group["lr"] = lr
        self.samples_seen += inps.shape[0]
        iter_end = time.time()
        self.meter.update(iter_time=iter_end - iter_start, data_time=data_seconds, lr=lr,
                          **{name: value.detach() if torch.is_tensor(value) else value
                             for name, value in outputs.items()})

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
        if _arg(self.args, "occupy", False):
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
            self.metric_writer = build_metric_writer(_arg(self.args, "logger", "tensorboard"), self.file_name)
        if "rng" in self._resume_state:
            restore_rng_states(self._resume_state["rng"], self.policy)
        if self.rank == 0:
            reset_eval_history(self.file_name, keep_through_epoch=self.start_epoch if self._resumed else 0)
        logger.info("Training start...")
        logger.info(f"\n{model}")

    def build_model(self) -> nn.Module:
        """The model this run trains, new from the exp (subclasses add to it, e.g. gradient checkpointing)."""
        return self.exp.get_model()

    def after_train(self) -> None:
        logger.info(f"Training of experiment is done and the best AP is {self.best_ap * 100:.2f}")
        if getattr(self, "metric_writer", None) is not None:
            self.metric_writer.close()

    def before_epoch(self) -> None:
        logger.info(f"---> start train epoch{self.epoch + 1}")
        # a bar on a terminal; the log lines of _log_progress serve every other output
        self.epoch_bar = terminal_bar(self.max_iter, desc=f"epoch {self.epoch + 1}/{self.max_epoch}") \
            if self.rank == 0 else None
        self.epoch_start_samples = self.samples_seen
        # upstream closes mosaic one epoch before the last no_aug_epochs (spec: 0-based epoch
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
        # the last epoch is always evaluated: the final figure must not be an older one
        if (self.epoch + 1) % self.exp.eval_interval == 0 or self.epoch + 1 == self.max_epoch:
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
        logger.info(f"{progress_str}, {self.policy.memory_line()}, {time_str}, {loss_str}, lr: {lr:.3e}"
                    f", size: {self.input_size[0]:d}, {img_per_s:.1f} img/s{skipped_str}, {eta_str}")
        if self.metric_writer is not None:
            scalars = {"train/lr": lr, **{f"train/{k}": v for k, v in losses.items()}}
            self.metric_writer.add_scalars(scalars, self.progress_in_iter)
        self.meter.clear_meters()
        self._stop_if_diverged(losses.get("total_loss", 0.0))

    def skipped_images(self) -> list:
        """Paths of training images that became unreadable after the dataset check (skipped, replaced)."""
        skipped = getattr(self._base_dataset, "skipped", None)
        if skipped is None:
            return []
        return [self._base_dataset.image_path(i) if hasattr(self._base_dataset, "image_path") else str(i)
                for i in skipped.indices()]

    def _stop_if_diverged(self, total_loss: float) -> None:
        """Stop a run whose loss stays NaN/inf instead of training on it for days (read at log time only)."""
        self.nonfinite_windows = 0 if math.isfinite(total_loss) else self.nonfinite_windows + 1
        if self.nonfinite_windows >= NONFINITE_LOG_WINDOWS:
            raise TrainingDiverged(
                f"training diverged: total_loss is {total_loss} in {self.nonfinite_windows} log windows in a row "
                f"(epoch {self.epoch + 1}, iter {self.iter + 1}); checkpoints saved before this are kept. Lower "
                f"basic_lr_per_img, lengthen warmup_epochs, or train without --fp16")

    # ------------------------------------------------------------------ data stream
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
            no_aug=self.mosaic_closed, cache_img=_arg(self.args, "cache"),
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

    # ------------------------------------------------------------------ checkpoints
    def resume_train(self, model):
        trust = bool(_arg(self.args, "trust_ckpt", False))
        ckpt_arg = _arg(self.args, "ckpt")
        if _arg(self.args, "resume", False):
            logger.info("resume training")
            ckpt_file = ckpt_arg or os.path.join(self.file_name, "latest_ckpt.pth")
            ckpt = load_checkpoint_file(ckpt_file, map_location="cpu", trust_pickle=trust)
            self._load_resume_state(model, ckpt)
            logger.info(f"loaded checkpoint '{ckpt_file}' (epoch {self.start_epoch})")
        elif ckpt_arg is not None:
            logger.info("loading checkpoint for fine tuning")
            ckpt = load_checkpoint_file(ckpt_arg, map_location="cpu", trust_pickle=trust)
            if "model" not in ckpt:
                raise KeyError(f"{ckpt_arg} has no 'model' entry: fine-tuning needs a YOLOX checkpoint")
            model = load_ckpt(model, ckpt["model"])
            self.start_epoch = 0
        return model

    def _load_resume_state(self, model, ckpt: Dict[str, Any]) -> None:
        self._resumed = True
        exact = "train_model" in ckpt or "samples_seen" in ckpt
        model.load_state_dict(ckpt["train_model"] if "train_model" in ckpt else ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.best_ap = ckpt.get("best_ap", 0) or 0
        self.best_epoch = int(ckpt.get("best_epoch", 0) or 0)
        self.train_seconds = float(ckpt.get("train_seconds", 0.0) or 0.0)
        ckpt_epoch = int(ckpt["start_epoch"])
        override = _arg(self.args, "start_epoch")
        self.start_epoch = override - 1 if override is not None else ckpt_epoch
        if not exact:
            return
        if self.start_epoch != ckpt_epoch:
            logger.warning(f"-e {override} differs from the checkpoint's epoch {ckpt_epoch + 1}: the data "
                           "stream and EMA restart from the start of that epoch, so the run is not an exact resume")
            return
        self.samples_seen = int(ckpt["samples_seen"])
        self.batch_size = int(ckpt.get("batch_size", self.batch_size))
        self.input_size = tuple(ckpt.get("input_size", self.input_size))
        if "scaler" in ckpt and ckpt["scaler"]:
            self.scaler.load_state_dict(ckpt["scaler"])
        self._resume_state = ckpt

    def _restore_ema(self) -> None:
        """EMA weights and update count from an exact checkpoint, else the ramp restarted at
        max_iter x start_epoch from the loaded weights (upstream)."""
        state = self._resume_state
        if "ema_updates" in state and "train_model" in state:
            self.ema_model.ema.load_state_dict(state["model"])
            self.ema_model.updates = int(state["ema_updates"])
        else:
            self.ema_model.updates = self.max_iter * self.start_epoch

    def _align_stream_with_epoch(self) -> None:
        """A checkpoint without a usable stream position (upstream format, or -e given): continue
        where an unbroken run of start_epoch epochs would be."""
        self.samples_seen = self.start_epoch * self.max_iter * self.per_rank_batch
        if self.samples_seen:
            self._start_stream()

    def save_ckpt(self, ckpt_name: str, update_best_ckpt: bool = False, ap: Optional[float] = None) -> None:
        if self.rank != 0:
            return
        live_model = unwrap_model(self.model)
        saved_model = self.ema_model.ema if self.use_model_ema else live_model
        logger.info(f"Save weights to {self.file_name}")
        state = {
            "start_epoch": self.epoch + 1,
            "model": saved_model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "best_ap": self.best_ap,
            "best_epoch": self.best_epoch,
            "curr_ap": ap,
            "train_seconds": self.train_seconds,
            # what an exact resume needs beyond upstream's keys
            "samples_seen": self.samples_seen,
            "iteration": self.progress_in_iter + 1,
            "batch_size": self.batch_size,
            "input_size": list(self.input_size),
            "scaler": self.scaler.state_dict(),
            "rng": rng_states(self.policy),
        }
        if self.use_model_ema:
            state["train_model"] = live_model.state_dict()
            state["ema_updates"] = self.ema_model.updates
        save_checkpoint(state, update_best_ckpt, self.file_name, ckpt_name)

    # ------------------------------------------------------------------ evaluation
    def evaluate_and_save_model(self) -> None:
        eval_model = self.ema_model.ema if self.use_model_ema else unwrap_model(self.model)
        with adjust_status(eval_model, training=False):
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
        synchronize()
        self.save_ckpt("last_epoch", update_best, ap=ap50_95)
        row = {"epoch": self.epoch + 1, "AP50": float(ap50), "AP50:95": float(ap50_95), "best": bool(update_best),
               "no_aug": bool(self.mosaic_closed), "iteration": self.progress_in_iter + 1,
               "samples_seen": self.samples_seen, "train_seconds": round(self.train_seconds, 3)}
        self.eval_history.append(row)
        if self.rank == 0:
            append_eval(self.file_name, row)
        if self.save_history_ckpt:
            self.save_ckpt(f"epoch_{self.epoch + 1}", ap=ap50_95)
