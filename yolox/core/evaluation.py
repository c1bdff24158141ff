"""A run's evaluations: the evaluator, the best AP so far and the history row of each evaluation."""
import os
import time
from typing import Any, Dict, Optional

from loguru import logger
from torch import nn

from yolox.core.eval_crosscheck import CrossCheck, cross_check_evaluation
from yolox.core.exp_calls import evaluate
from yolox.utils.device import DevicePolicy
from yolox.utils.eval_history import append_eval
from yolox.utils.model_utils import adjust_status

__all__ = ["RunEvaluation"]

# images of the first evaluation batch the CPU cross-check runs: a crater tile holds tens of detections, and the
# CPU pass of a whole batch took seconds on a GPU machine's CPU
CROSS_CHECK_IMAGES = 4


class RunEvaluation:
    """Evaluates the model the run would keep, tracks the best AP, and records each evaluation as a history row
    (eval_history.jsonl in the run folder on rank 0)."""

    def __init__(self, exp, evaluator, policy: DevicePolicy, run_dir: str, rank: int, distributed: bool,
                 best_ap: float = 0.0, best_epoch: int = 0) -> None:
        self.exp = exp
        self.evaluator = evaluator
        self.policy = policy
        self.run_dir = run_dir
        self.rank = rank
        self.distributed = distributed
        self.best_ap = best_ap
        self.best_epoch = best_epoch
        self.last_outputs: Dict[int, dict] = {}
        self.last_seconds = 0.0
        self._checked_at_skips: Optional[int] = None

    def cross_check(self, model: nn.Module, skipped_steps: int) -> Optional[CrossCheck]:
        """The first evaluation batch on the device and on the CPU, in fp32 (yolox/core/eval_crosscheck.py): at
        the run's first evaluation off the CPU, and again only once the guard has skipped a non-finite step since
        (`skipped_steps`), or when it compared no detections (an early model); None when not due."""
        due = self._checked_at_skips is None or skipped_steps > self._checked_at_skips
        if self.rank != 0 or self.policy.kind == "cpu" or not due:
            return None
        self._checked_at_skips = skipped_steps
        images = next(iter(self.evaluator.dataloader))[0][:CROSS_CHECK_IMAGES]
        check = cross_check_evaluation(model, images, self.policy, num_classes=self.evaluator.num_classes,
                                       conf_thre=self.evaluator.confthre, nms_thre=self.evaluator.nmsthre)
        if check is not None and not check.device_detections and not check.cpu_detections:
            self._checked_at_skips = None   # an early model detects nothing: nothing was compared, check again
        return check

    @property
    def batches(self) -> int:
        return len(self.evaluator.dataloader)

    def run(self, model: nn.Module, epoch: int, progress: Dict[str, Any], skipped_steps: int = 0
            ) -> Dict[str, Any]:
        """Evaluate `model` after `epoch` (1-based); returns its history row ("best": whether it leads), which
        `record` appends to the history.

        `progress` (iteration, samples seen, training seconds, ...) is copied into the row; `skipped_steps` (the
        guard's count) says whether the CPU cross-check is due again.
        """
        with adjust_status(model, training=False):
            cpu_check = self.cross_check(model, skipped_steps)
        started = time.time()    # what the --time plan expects of an evaluation: the cross-check is once per run
        with adjust_status(model, training=False):
            # in the precision the run trains in; the fp32 agreement with the CPU is the cross-check's
            (ap50_95, ap50, summary), self.last_outputs = evaluate(self.exp, model, self.evaluator, self.distributed,
                                                                   self.policy, amp=self.policy.amp_dtype is not None)
        # unlike upstream, the first evaluation also makes a best checkpoint when AP is still 0, so tools/eval.py
        # and demo.py find their default checkpoint after any evaluated run
        first_best = not os.path.exists(os.path.join(self.run_dir, "best_ckpt.pth"))
        best = ap50_95 > self.best_ap or first_best
        self.best_ap = max(self.best_ap, ap50_95)
        if best:
            self.best_epoch = epoch
        if self.rank == 0:
            logger.info("\n" + str(summary))
        if cpu_check is not None and not cpu_check.agree:
            # a simulated policy (tests) names the kind it simulates, whose check command would find the fault
            logger.warning(cpu_check.warning(self.policy.kind if self.policy.simulated else str(self.policy.device)))
        self.last_seconds = time.time() - started
        row = {"epoch": epoch, "AP50": float(ap50), "AP50:95": float(ap50_95), "best": bool(best), **progress}
        if cpu_check is not None:
            row["cpu_cross_check"] = cpu_check.row()
        return row

    def record(self, row: Dict[str, Any]) -> None:
        """Append `row` to eval_history.jsonl (rank 0) once its checkpoints are written: a resume redoes an
        evaluation whose row is missing, so the row must not come before what it describes."""
        if self.rank == 0:
            append_eval(self.run_dir, row)

    def best_state(self) -> Dict[str, Optional[float]]:
        return {"best_ap": self.best_ap, "best_epoch": self.best_epoch}
