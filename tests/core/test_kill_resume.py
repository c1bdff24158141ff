"""Training survives SIGKILL at random moments: killed and resumed again and again, a CPU run of the real
YOLOX model ends with the same checkpoint as an uninterrupted run with the same seed (exactly, bit for bit)."""
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, List, Optional, Sequence, Tuple

import pytest
import torch

from tests.fixtures.tiny_coco import make_tiny_coco, write_exp_file
from yolox.utils.checkpoint import load_checkpoint_file
from yolox.utils.eval_history import read_eval_history

REPO = Path(__file__).resolve().parents[2]
# read at import, before the per-test private cache is set: the fused BatchNorm+SiLU kernel is built once per
# machine there, not once per training process (its build takes longer than this whole test)
TORCH_EXTENSIONS = os.environ.get("TORCH_EXTENSIONS_DIR") or str(
    Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "torch_extensions")
# 32 images at batch 4: 8 iterations an epoch, so the multiscale resize (every 10 iterations) changes the
# input size inside epochs 2, 3, ...; every epoch is evaluated; the last one trains without mosaic
OPTS = ["input_size", "64,64", "test_size", "64,64", "print_interval", "1", "save_history_ckpt", "false"]
POLL_SECONDS = 0.005
LAUNCH_TIMEOUT = 300.0
# what a resumed run cannot replay: wall time
NOT_REPLAYED = {"train_seconds"}
KILL_SEED = 26


@dataclass(frozen=True)
class Phase:
    """A kill lands `delay` s after `start` appears in the run's log (the launch when None), or as soon as
    `end` appears, whichever comes first."""

    start: Optional[str]
    end: Optional[str]
    max_delay: float


PHASES = {
    "startup": Phase(None, "Training start...", 3.0),
    "mid_epoch": Phase(" iter: 1/", "Save weights to", 0.15),  # about the epoch's other 7 iterations
    "checkpoint": Phase("Save weights to", None, 0.05),  # about a torch.save + fsync of the checkpoint
    "evaluation": Phase("evaluating: done", None, 0.05),  # COCO scoring, then the last/best checkpoints
}


@pytest.fixture(scope="module")
def coco32(tmp_path_factory) -> Path:
    return make_tiny_coco(tmp_path_factory.mktemp("coco32"), num_train=32, num_val=8)


class LogTail:
    """What one training process has appended to the run's train_log.txt since it was started."""

    def __init__(self, path: Path):
        self.path = path
        self.offset = path.stat().st_size if path.exists() else 0

    def text(self) -> str:
        if not self.path.exists():
            return ""
        with open(self.path, "rb") as handle:
            handle.seek(self.offset)
            return handle.read().decode("utf-8", errors="replace")


def start_training(exp_file: Path, run_dir: Path, max_epoch: int) -> Tuple[subprocess.Popen, LogTail]:
    """tools/train.py on the CPU, with --resume when the run already has a checkpoint."""
    resume = ["--resume"] if (run_dir / "latest_ckpt.pth").exists() else []
    # one compute thread: where other processes share the cores, OpenMP threads stall waiting for each other
    # and the phases' timing would drift (resume is exact at any fixed thread count)
    env = dict(os.environ, PYTHONPATH=str(REPO), TORCH_EXTENSIONS_DIR=TORCH_EXTENSIONS, OMP_NUM_THREADS="1")
    cmd = [sys.executable, str(REPO / "tools" / "train.py"), "-f", str(exp_file), "--device", "cpu", "-b", "4",
           "-expn", run_dir.name, *resume, *OPTS, "max_epoch", str(max_epoch)]
    tail = LogTail(run_dir / "train_log.txt")
    with open(run_dir.parent / f"{run_dir.name}.out", "ab") as out:
        process = subprocess.Popen(cmd, env=env, cwd=str(REPO), stdout=out, stderr=subprocess.STDOUT)
    return process, tail


def _failure(process: subprocess.Popen, tail: LogTail, what: str) -> str:
    return f"{what} (exit status {process.poll()}); log since its start:\n{tail.text()[-3000:]}"


def wait_for_text(process: subprocess.Popen, tail: LogTail, text: str) -> int:
    """Position just after `text` in the process's log, once it appears."""
    deadline = time.monotonic() + LAUNCH_TIMEOUT
    while time.monotonic() < deadline:
        found = tail.text().find(text)
        if found >= 0:
            return found + len(text)
        assert process.poll() is None, _failure(process, tail, f"training ended before {text!r} was logged")
        time.sleep(POLL_SECONDS)
    raise AssertionError(_failure(process, tail, f"{text!r} not logged within {LAUNCH_TIMEOUT:.0f} s"))


def kill_in_phase(process: subprocess.Popen, tail: LogTail, phase: Phase, delay: float) -> str:
    """SIGKILL the process in `phase`; returns the last log line before the kill."""
    since = wait_for_text(process, tail, phase.start) if phase.start else 0
    kill_at = time.monotonic() + delay
    while time.monotonic() < kill_at and not (phase.end and phase.end in tail.text()[since:]):
        assert process.poll() is None, _failure(process, tail, "training ended before its kill")
        time.sleep(POLL_SECONDS)
    os.kill(process.pid, signal.SIGKILL)
    assert process.wait(timeout=60) == -signal.SIGKILL, _failure(process, tail, "not ended by SIGKILL")
    lines = tail.text().strip().splitlines()
    return lines[-1].split(" - ", 1)[-1][:90] if lines else "(nothing logged)"


def readable_checkpoint_epoch(run_dir: Path) -> int:
    """The epoch of latest_ckpt.pth (0 when there is none yet), after loading every checkpoint of the run:
    none is half written, since save_checkpoint renames a complete temporary file over it."""
    for path in run_dir.glob("*.pth"):
        assert "start_epoch" in load_checkpoint_file(path), path
    latest = run_dir / "latest_ckpt.pth"
    return int(load_checkpoint_file(latest)["start_epoch"]) if latest.exists() else 0


def kill_plan(phases: Sequence[str]) -> List[Tuple[str, float]]:
    """(phase, delay) per kill, each delay seeded random within its phase's limit."""
    rng = random.Random(KILL_SEED)
    return [(name, rng.uniform(0.0, PHASES[name].max_delay)) for name in phases]


def assert_same(reference: Any, other: Any, where: str) -> None:
    """Nested checkpoint values equal bit for bit (tensors with torch.equal): the tolerance is zero, since on
    the CPU the same operations on the same values give the same bits, and resume restores every state."""
    if torch.is_tensor(reference):
        assert torch.is_tensor(other) and reference.dtype == other.dtype, where
        assert torch.equal(reference, other), f"{where}: {int((reference != other).sum())} values differ"
    elif isinstance(reference, dict):
        assert isinstance(other, dict) and reference.keys() == other.keys(), where
        for key, value in reference.items():
            assert_same(value, other[key], f"{where}.{key}")
    elif isinstance(reference, (list, tuple)):
        assert isinstance(other, (list, tuple)) and len(reference) == len(other), where
        for index, (value, second) in enumerate(zip(reference, other)):
            assert_same(value, second, f"{where}[{index}]")
    else:
        assert reference == other, f"{where}: {reference!r} != {other!r}"


def train_with_kills(exp_file: Path, run_dir: Path, plan: Sequence[Tuple[str, float]], max_epoch: int) -> List[str]:
    """Start, SIGKILL per `plan`, start again (resuming once a checkpoint exists), then train to the end;
    returns one line per kill: where it landed and what it left."""
    landed = []
    for name, delay in plan:
        temporaries = set(run_dir.glob(".*.tmp"))
        process, tail = start_training(exp_file, run_dir, max_epoch)
        last_line = kill_in_phase(process, tail, PHASES[name], delay)
        partial = sorted(path.name for path in set(run_dir.glob(".*.tmp")) - temporaries)
        landed.append(f"{name} +{delay:.3f} s, checkpoint epoch {readable_checkpoint_epoch(run_dir)}, "
                      f"partial writes {partial}, after: {last_line}")
    process, tail = start_training(exp_file, run_dir, max_epoch)
    assert process.wait(timeout=LAUNCH_TIMEOUT) == 0, _failure(process, tail, "the last resume failed")
    return landed


def assert_evaluations_agree(reference_dir: Path, killed_dir: Path, max_epoch: int) -> None:
    """Every epoch's evaluation of the killed run scored what the uninterrupted run scored (one a kill
    interrupted is redone on resume)."""
    expected = {row["epoch"]: row for row in read_eval_history(str(reference_dir))}
    rows = read_eval_history(str(killed_dir))
    assert [row["epoch"] for row in rows] == list(range(1, max_epoch + 1))
    for row in rows:
        for key in ("AP50", "AP50:95", "iteration", "samples_seen", "no_aug"):
            assert row[key] == expected[row["epoch"]][key], f"epoch {row['epoch']} {key}"


# fast: the first kill comes before any checkpoint exists, so the second start is a fresh one (no --resume);
# slow: five kills in each phase, in a seeded random order
@pytest.mark.parametrize("phases", [
    pytest.param(("mid_epoch", "checkpoint", "evaluation"), id="3-kills"),
    pytest.param(random.Random(KILL_SEED).sample(list(PHASES) * 5, 20), id="20-kills", marks=pytest.mark.slow),
])
def test_sigkilled_and_resumed_run_ends_with_the_uninterrupted_checkpoint(tmp_path, coco32, phases):
    # a kill moves the checkpoint on by an epoch at most, and not in startup: with one epoch more than the
    # other kills, every start has an epoch left to be killed in, and the last resume trains at least one
    max_epoch = sum(name != "startup" for name in phases) + 1
    exp_file = write_exp_file(tmp_path / "kill_exp.py", coco32, tmp_path / "out", max_epoch=max_epoch)
    (tmp_path / "out").mkdir()
    reference_dir, killed_dir = tmp_path / "out" / "uninterrupted", tmp_path / "out" / "killed"
    reference, tail = start_training(exp_file, reference_dir, max_epoch)
    assert reference.wait(timeout=LAUNCH_TIMEOUT) == 0, _failure(reference, tail, "uninterrupted run failed")

    landed = train_with_kills(exp_file, killed_dir, kill_plan(phases), max_epoch)
    print("\n".join([f"{len(landed)} kills, {max_epoch} epochs:", *landed]))
    assert not list(killed_dir.glob(".*.tmp")), "temporary files of interrupted saves were left behind"
    expected = load_checkpoint_file(reference_dir / "latest_ckpt.pth")
    final = load_checkpoint_file(killed_dir / "latest_ckpt.pth")
    assert final["start_epoch"] == expected["start_epoch"] == max_epoch
    assert {"model", "train_model", "optimizer", "rng"} <= final.keys()
    for key in expected.keys() - NOT_REPLAYED:
        assert_same(expected[key], final.get(key), key)
    assert_evaluations_agree(reference_dir, killed_dir, max_epoch)

