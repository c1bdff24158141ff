"""The Trainer's checkpoints: writing them (never with non-finite weights) and resuming from them exactly."""
import os
from typing import Any, Dict, Optional

from loguru import logger

from yolox.core.rng_state import rng_states
from yolox.utils.checkpoint import load_checkpoint_file, load_ckpt, save_checkpoint
from yolox.utils.ema import unwrap_model
from yolox.utils.eval_history import read_eval_history

__all__ = ["CheckpointSteps"]


class CheckpointSteps:
    """Trainer methods for checkpoints; upstream's names (`resume_train`, `save_ckpt`) are kept for subclasses."""

    def resume_train(self, model):
        trust = bool(getattr(self.args, "trust_ckpt", False))
        ckpt_arg = getattr(self.args, "ckpt", None)
        if getattr(self.args, "resume", False):
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
        self.resumed_budget = {key: ckpt[key] for key in ("time_budget", "time_spent") if ckpt.get(key) is not None}
        ckpt_epoch = int(ckpt["start_epoch"])
        override = getattr(self.args, "start_epoch", None)
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

    def _evaluate_if_missed(self) -> None:
        """A run stopped during an evaluation resumes after that epoch: evaluate it now, as an unbroken run did."""
        if not self._resumed or self.start_epoch == 0:
            return
        due = (self.start_epoch % self.exp.eval_interval == 0 or self.start_epoch >= self.max_epoch
               or self.mosaic_closed)
        if not due or any(row["epoch"] == self.start_epoch for row in read_eval_history(self.file_name)):
            return
        logger.info(f"epoch {self.start_epoch} was not evaluated before the run stopped: evaluating it now")
        self.epoch, self.iter = self.start_epoch - 1, self.max_iter - 1     # where the unbroken run evaluated it
        self.evaluate_and_save_model()
        self.epoch, self.iter = self.start_epoch, 0

    def save_ckpt(self, ckpt_name: str, update_best_ckpt: bool = False, ap: Optional[float] = None) -> None:
        """Write `<ckpt_name>_ckpt.pth` (rank 0 only); weights holding NaN or inf are refused and counted."""
        if self.rank != 0:
            return
        live_model = unwrap_model(self.model)
        saved_model = self.ema_model.ema if self.use_model_ema else live_model
        state = {"start_epoch": self.epoch + 1, "model": saved_model.state_dict()}
        if self.use_model_ema:
            state["train_model"] = live_model.state_dict()
            state["ema_updates"] = self.ema_model.updates
        name = f"{ckpt_name}_ckpt.pth"
        if not all(self.guard.checkpoint_is_finite(state[key], name) for key in ("model", "train_model")
                   if key in state):
            return
        logger.info(f"Save weights to {self.file_name}")
        state.update({
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
        })
        if self.budget is not None:
            state.update(time_budget=self.budget.keeper.budget_seconds, time_spent=self.budget.keeper.spent())
        save_checkpoint(state, update_best_ckpt, self.file_name, ckpt_name)
