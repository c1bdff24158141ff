"""Only the device layer may talk to CUDA directly (CI greps for this too)."""
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CUDA_CALL = re.compile(r"torch\.cuda|\.cuda\(")
DEVICE_LAYER = REPO / "yolox" / "utils" / "device"


def test_no_torch_cuda_outside_device_layer():
    offenders = []
    for folder in ("yolox", "tools", "benchmarks", "exps"):
        for path in sorted((REPO / folder).rglob("*.py")):
            if DEVICE_LAYER in path.parents:
                continue
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if CUDA_CALL.search(line):
                    offenders.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert not offenders, "torch.cuda / .cuda( outside the yolox/utils/device package:\n" + "\n".join(offenders)


def test_the_pattern_catches_both_spellings():
    assert CUDA_CALL.search("x = torch.cuda.Stream()") and CUDA_CALL.search("model.cuda(0)")
    assert not CUDA_CALL.search("policy.to(model)")
