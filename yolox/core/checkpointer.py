"""Checkpoints of a run: what resume reads back, and writing them (atomic, never with non-finite weights)."""
import os
import time
from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional, Tuple

from loguru import logger

import torch
from torch import nn

from yolox.core.guards import NonFiniteGuard
from yolox.core.options import RunOptions
from yolox.utils.checkpoint import load_checkpoint_file, load_ckpt, save_checkpoint
from yolox.utils.ema import ModelEMA

__all__ = ["Checkpointer", "ResumePoint", "LATEST", "restore_ema"]

LATEST = "latest"


@dataclass
class ResumePoint:
    """Where a resumed run continues: its epoch and, for an exact resume, the stream position and the rest."""

    start_epoch: int                       # 0-based epoch to train next
    state: Dict[str, Any]                  # the checkpoint as loaded
    exact: bool                            # the checkpoint has the stream position and the training weights
    best_ap: float = 0.0
    best_epoch: int = 0
    train_seconds: float = 0.0
    budget: Dict[str, float] = field(default_factory=dict)   # time_budget, time_spent of a --time run

    @property
    def samples_seen(self) -> int:
        return int(self.state["samples_seen"]) if self.exact else 0


class Checkpointer:
    """Reads and writes `<name>_ckpt.pth` in a run folder; only rank 0 writes."""

    def __init__(self, run_dir: str, rank: int, guard: NonFiniteGuard, trust_pickle: bool = False,
                 latest_every_s: float = 0.0) -> None:
        self.run_dir = run_dir
        self.rank = rank
        self.guard = guard
        self.trust_pickle = trust_pickle
        self.latest_every_s = latest_every_s
        self._latest_written: Optional[float] = None

    def latest_due(self, final: bool) -> bool:
        """Whether `latest` (the resume point) is due: at this run's first epoch end, then at most every
        latest_every_s seconds, and at its end. A kill loses at most that much training; a resume replays it
        exactly."""
        now = time.monotonic()
        if final or self._latest_written is None or now - self._latest_written >= self.latest_every_s:
            self._latest_written = now
            return True
        return False

    def load(self, path: str) -> Dict[str, Any]:
        return load_checkpoint_file(path, map_location="cpu", trust_pickle=self.trust_pickle)

    def load_weights(self, options: RunOptions, model: nn.Module, optimizer: torch.optim.Optimizer
                     ) -> Optional[ResumePoint]:
        """Resume (`--resume`: weights and optimizer state, and where to continue) or fine-tune from `-c` weights;
        the resume point, or None for a run that starts at its first epoch."""
        if options.resume:
            logger.info("resume training")
            point = self.resume_point(options.ckpt, options.start_epoch)
            state = point.state
            model.load_state_dict(state["train_model"] if "train_model" in state else state["model"])
            optimizer.load_state_dict(state["optimizer"])
            return point
        if options.ckpt is not None:
            logger.info("loading checkpoint for fine tuning")
            state = self.load(options.ckpt)
            if "model" not in state:
                raise KeyError(f"{options.ckpt} has no 'model' entry: fine-tuning needs a YOLOX checkpoint")
            load_ckpt(model, state["model"])
        return None

    def resume_point(self, ckpt_path: Optional[str], start_epoch_override: Optional[int]) -> ResumePoint:
        """The state of `ckpt_path` (default: this run's latest checkpoint); `start_epoch_override` is 1-based."""
        path = ckpt_path or os.path.join(self.run_dir, f"{LATEST}_ckpt.pth")
        state = self.load(path)
        epoch = int(state["start_epoch"])
        exact = "train_model" in state or "samples_seen" in state
        start = start_epoch_override - 1 if start_epoch_override is not None else epoch
        if exact and start != epoch:
            logger.warning(f"-e {start_epoch_override} differs from the checkpoint's epoch {epoch + 1}: the data "
                           "stream and EMA restart from the start of that epoch, so the run is not an exact resume")
            exact = False
        logger.info(f"loaded checkpoint '{path}' (epoch {start})")
        budget = {key: state[key] for key in ("time_budget", "time_spent") if state.get(key) is not None}
        return ResumePoint(start_epoch=start, state=state, exact=exact, best_ap=float(state.get("best_ap", 0) or 0),
                           best_epoch=int(state.get("best_epoch", 0) or 0),
                           train_seconds=float(state.get("train_seconds", 0.0) or 0.0), budget=budget)

    def save(self, name: str, state: Mapping[str, Any], best: bool = False) -> bool:
        """Write `<name>_ckpt.pth` (and best_ckpt.pth when `best`); False when its weights are not finite."""
        if self.rank != 0:
            return False
        file_name = f"{name}_ckpt.pth"
        weights: Tuple[str, ...] = tuple(key for key in ("model", "train_model") if key in state)
        if not all(self.guard.checkpoint_is_finite(state[key], file_name) for key in weights):
            return False
        logger.info(f"Save weights to {self.run_dir}")
        save_checkpoint(state, best, self.run_dir, name)
        return True


def restore_ema(ema: ModelEMA, resume: Optional[ResumePoint], updates_before: int) -> None:
    """The EMA weights and update count of an exact resume; else (upstream) the ramp restarts at
    `updates_before` from the weights loaded."""
    state = resume.state if resume is not None else {}
    if resume is not None and resume.exact and "ema_updates" in state and "train_model" in state:
        ema.ema.load_state_dict(state["model"])
        ema.updates = int(state["ema_updates"])
    else:
        ema.updates = updates_before
