"""The MPS autocast probe, run in a child process: the known failure is a hard abort that Python cannot catch."""
from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from typing import Callable, Optional, Tuple

import torch

ProbeFn = Callable[[torch.dtype], Tuple[bool, str]]

PROBE_SCRIPT = textwrap.dedent("""
    import sys
    import torch
    device, dtype = torch.device(sys.argv[1]), getattr(torch, sys.argv[2])
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.SiLU(),
                                torch.nn.Conv2d(8, 4, 1)).to(device).train()
    images = torch.randn(2, 3, 32, 32, device=device)
    target = torch.rand(2, 4, 32, 32, device=device)
    loss_fn = torch.nn.BCEWithLogitsLoss()

    def grads(amp):
        model.zero_grad()
        with torch.autocast(device_type=device.type, dtype=dtype, enabled=amp):
            loss = loss_fn(model(images), target)
        scaler = torch.amp.GradScaler(device.type, enabled=amp and dtype == torch.float16)
        scaler.scale(loss).backward()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
        scaler.unscale_(optimizer)
        return torch.cat([p.grad.flatten().float() for p in model.parameters()]).cpu(), float(loss)

    ref, ref_loss = grads(False)
    amp, amp_loss = grads(True)
    if not torch.isfinite(amp).all():
        sys.exit("non-finite gradients under autocast")
    if amp.abs().sum() == 0:
        sys.exit("gradients silently zero under autocast")
    error = float((amp - ref).norm() / ref.norm().clamp_min(1e-12))
    if error > 0.1:
        sys.exit(f"autocast gradients off by {error:.3f} relative to fp32")
    print(f"PROBE-OK loss {ref_loss:.4f}/{amp_loss:.4f} grad rel error {error:.4f}")
""")


def probe_mps_amp(dtype: torch.dtype = torch.float16, timeout_s: float = 120, device: str = "mps",
                  script: Optional[str] = None) -> Tuple[bool, str]:
    """Run conv+BN+loss forward/backward under autocast in a child process; (ok, one-line reason).

    `device` and `script` are overridable so the machinery itself can be tested on CPU.
    """
    dtype_name = str(dtype).replace("torch.", "")
    command = [sys.executable, "-c", script or PROBE_SCRIPT, device, dtype_name]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return False, f"{dtype_name} probe on {device} did not finish within {timeout_s:g} s"
    if done.returncode == 0:
        last = done.stdout.strip().splitlines()
        return True, f"{dtype_name} autocast on {device}: " + (last[-1] if last else "ok")
    tail = _last_line(done.stderr) or _last_line(done.stdout) or "no output"
    if done.returncode < 0:
        name = _signal_name(-done.returncode)
        return False, f"{dtype_name} probe on {device} was killed by {name} (hard abort): {tail}"
    return False, f"{dtype_name} probe on {device} failed (exit {done.returncode}): {tail}"


def _last_line(text: str) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"
