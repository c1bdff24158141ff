"""What the device self-check's report changes in a policy: each failed check becomes a decision with its reason.

Mixed precision is turned off when a check under it failed; a part that disagrees with the CPU (assignment, loss,
decoding + NMS) is moved to the CPU; memory that grew shortens the cache-release cadence. A failed check that no
decision can work around (forward, gradients, optimizer, EMA) is a warning that names it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, List, Mapping, Tuple, Union

from yolox.utils.device.selfcheck_report import (
    CHECK_COMMAND,
    CPU_FALLBACKS,
    MEMORY_PART,
    Report,
    cached_report,
    failed_checks,
    mismatch,
)

SelfCheck = Union[None, bool, Report]
# The cadence a memory-growth finding sets where the device's rule was never to release.
GROWTH_RELEASE_EVERY = 10
FALLBACK_DECISIONS = tuple(decision for _, decision in CPU_FALLBACKS)


def resolve_report(self_check: SelfCheck, kind: str, simulated: bool) -> Tuple[Any, str, str]:
    """(report or None, where it came from, why there is none): the cache by default, never for a simulated policy
    (its rules are another device's); False: no report; a mapping: that report."""
    if self_check is False:
        return None, "", "not read (self_check=False)"
    if isinstance(self_check, Mapping):
        return self_check, "the report given", ""
    if simulated:
        return None, "", "not read: the cache describes this machine's devices, not a simulated one"
    report, path = cached_report(kind)
    if report is None:
        return None, "", f"no report in {path.parent}: run {CHECK_COMMAND} --device {kind}"
    return report, str(path), ""


def decide_self_check(out: Any, kind: str, self_check: SelfCheck, simulated: bool,
                      explicit_cache_every: bool) -> None:
    """Set the self-check decisions on `out` (the policy's scratchpad) and apply the report's findings."""
    report, source, absent = resolve_report(self_check, kind, simulated)
    if report is not None and (reason := mismatch(report, kind)) is not None:
        out.warn(f"device check report {source} ignored: {reason}; run {CHECK_COMMAND} --device {kind} again")
        report, absent = None, f"report {source} ignored: {reason}"
    if report is None:
        out.set("self_check", None, absent)
        for decision in FALLBACK_DECISIONS:
            out.set(decision, False, "no device check report: the part runs on the device")
        return
    failed = failed_checks(report)
    names = ", ".join(str(row.get("name")) for row in failed) or "none"
    label = Path(source).name if source.endswith(".json") else source
    out.set("self_check", source or "given", f"device check report {label} ({len(report['checks'])} checks, "
                                             f"failed: {names})")
    for decision in FALLBACK_DECISIONS:
        out.set(decision, False, f"the part agreed with the CPU in the device check (report {label})")
    _apply_failures(out, failed, label, explicit_cache_every)


def _apply_failures(out: Any, failed: List[Mapping[str, Any]], label: str, explicit_cache_every: bool) -> None:
    handled = set()
    amp_failed = [row for row in failed if row.get("amp")]
    if amp_failed and out.values.get("amp_dtype") is not None:
        out.set("amp_dtype", None, f"mixed precision off: the device check under it failed "
                                   f"({_names(amp_failed)}; report {label})")
        out.set("grad_scaler", False, "no scaler without fp16 autocast")
        out.warn(f"mixed precision turned off: the device check failed {_names(amp_failed)} under it")
    handled.update(id(row) for row in amp_failed)
    for part, decision in CPU_FALLBACKS:
        rows = [row for row in failed if row.get("part") == part and not row.get("amp")]
        if rows:
            out.set(decision, True, f"runs on the CPU: on this device it disagreed with the CPU in the device check "
                                    f"({_names(rows)}; report {label})")
            handled.update(id(row) for row in rows)
    grew = [row for row in failed if row.get("part") == MEMORY_PART]
    if grew and not explicit_cache_every:
        now = int(out.values["cache_release_every"])
        shorter = max(1, now // 2) if now > 0 else GROWTH_RELEASE_EVERY
        out.set("cache_release_every", shorter, f"shortened from {now or 'never'}: device memory grew during the "
                                                f"device check's training run (report {label})")
        handled.update(id(row) for row in grew)
    rest = [row for row in failed if id(row) not in handled]
    if rest:
        out.warn(f"the device check found {_names(rest)} disagreeing with the CPU on this device and no setting "
                 f"works around it: results here may be wrong; train with --device cpu or report it (paste the "
                 f"device check report into an issue)")


def _names(rows: List[Mapping[str, Any]]) -> str:
    return ", ".join(str(row.get("name")) for row in rows)
