"""Each fault injected on the simulated device (MPS rules, tensors on the CPU) is caught by its own check only."""
import pytest

from yolox.diagnostics.device_check import CheckPlan, Faults, run_checks
from yolox.diagnostics.device_check.memory_watch import Schedule
from yolox.utils.device import MIB, MemoryBackend, build_policy

# two sizes, one iteration each: a cycle is 2 iterations, the growth rule compares iterations 1-2 with 5-6
SHORT = Schedule(sizes=(160, 192), change_every=1, iterations=6)


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


class LeakingMemory(MemoryBackend):
    """Driver memory that grows by 100 MiB at every reading, as a leak would."""

    name = "leaking"

    def __init__(self):
        super().__init__()
        self.readings = 0

    def driver_allocated(self):
        self.readings += 1
        return 500 * MIB + self.readings * 100 * MIB


def failed(faults=Faults(), memory=None):
    policy = build_policy("mps", tensors_on="cpu", memory=memory or MemoryBackend())
    results = run_checks(CheckPlan(policy=policy, schedule=SHORT, faults=faults), progress=lambda message: None)
    assert all(result.skipped for result in results if result.amp)  # MPS rules: AMP off unless asked
    return sorted(result.name for result in results if not result.passed)


def perturb_eval_conv(model):
    """One conv's output off by 0.01 in eval mode only (a wrong eval kernel of one op)."""
    def hook(module, args, output):
        return output if module.training else output + 0.01
    model.head.obj_preds[0].register_forward_hook(hook)


def nan_from_call(k):
    """A conv whose output turns NaN from its k-th train-mode call on each device model (iteration k of a run)."""
    def install(model):
        calls = [0]

        def hook(module, args, output):
            if not module.training:
                return output
            calls[0] += 1
            return output * float("nan") if calls[0] >= k else output
        model.head.stems[0].conv.register_forward_hook(hook)
    return install


def shift_boxes(detections):
    """Every detected box moved by 4 px in x and y, as garbled device boxes would be."""
    shifted = []
    for rows in detections:
        if rows is not None:
            rows = rows.clone()
            rows[:, :4] += 4.0
        shifted.append(rows)
    return shifted


def test_healthy_simulated_device_passes_every_check():
    assert failed() == []


def test_perturbed_eval_op_is_caught_by_the_eval_forward_check_only():
    assert failed(Faults(device_model=perturb_eval_conv)) == ["forward, eval mode"]


def test_nan_from_iteration_3_is_caught_by_the_training_check_only():
    assert failed(Faults(device_model=nan_from_call(3))) == ["training: non-finite losses (6 its)"]


def test_shifted_evaluation_boxes_are_caught_by_the_evaluation_check_only():
    assert failed(Faults(device_detections=shift_boxes)) == ["evaluation AP"]


def test_growing_memory_is_caught_by_the_memory_check_only():
    assert failed(memory=LeakingMemory()) == ["training: memory growth (leaking, MiB)"]
