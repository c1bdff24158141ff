"""What zero padding rows in the targets cost the SimOTA label assignment and the loss.

    python benchmarks/bench_padding_rows.py --threads 1
    python benchmarks/bench_padding_rows.py -n yolox-s --size 416 --batch 8 --real 20 --rows 20,120,500,1000

One batch of random images goes through the model's backbone and head once (no gradients); the same head
outputs are then assigned (and the loss computed) against the same `--real` boxes per image, zero padded to each
of `--rows` label rows. Prints the median milliseconds of each, and whether the assignment equals the unpadded one.
"""
import statistics
import time
from typing import Callable, List

import torch
from tabulate import tabulate

from yolox.models.assignment import simota_assign
from yolox.models.build import MODEL_SIZES, build_yolox, init_yolox
from yolox.models.losses import IOUloss
from yolox.models.yolox_loss import compute_losses
from yolox.utils.user_errors import CLIParser, UserError, run_cli


def median_ms(step: Callable[[], object], repeats: int, sync: Callable[[], None]) -> float:
    """Median milliseconds of `step` over `repeats` runs after one warm-up run."""
    step()
    times = []
    for _ in range(repeats):
        sync()
        started = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def padded_labels(batch: int, real: int, rows: int, size: int, num_classes: int, seed: int = 0) -> torch.Tensor:
    """[batch, rows, 5] (class, cx, cy, w, h): `real` random boxes per image, then zero rows."""
    gen = torch.Generator().manual_seed(seed)
    labels = torch.zeros(batch, rows, 5)
    wh = 8 + torch.rand(batch, real, 2, generator=gen) * (size / 4)
    labels[:, :real, 0] = torch.randint(0, num_classes, (batch, real), generator=gen).float()
    labels[:, :real, 1:3] = wh / 2 + torch.rand(batch, real, 2, generator=gen) * (size - wh)
    labels[:, :real, 3:5] = wh
    return labels


def parse_rows(text: str, real: int) -> List[int]:
    rows = [int(part) for part in text.split(",") if part.strip()]
    if not rows or min(rows) < real:
        raise UserError(f"--rows {text}: give comma-separated row counts of at least --real {real}, e.g. 20,500")
    return rows


def main() -> None:
    parser = CLIParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--name", default="yolox-s", choices=sorted(MODEL_SIZES))
    parser.add_argument("--size", type=int, default=416)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--classes", type=int, default=1, help="head classes (crater exps: 1)")
    parser.add_argument("--real", type=int, default=20, help="real boxes per image")
    parser.add_argument("--rows", default="20,500", help="label rows to pad to, comma-separated")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = parser.parse_args()
    rows_list = parse_rows(args.rows, args.real)
    if args.threads:
        torch.set_num_threads(args.threads)
    from yolox.utils.device import build_policy

    policy = build_policy(args.device)
    depth, width, depthwise = MODEL_SIZES[args.name]
    model = policy.to(init_yolox(build_yolox(depth, width, args.classes, depthwise=depthwise))).train()
    images = policy.to(torch.rand(args.batch, 3, args.size, args.size, generator=torch.Generator().manual_seed(0)))
    with torch.no_grad():
        outputs, *grid, _ = model.head.train_outputs(model.backbone(images * 255))
    reference = None
    table = []
    for rows in rows_list:
        labels = policy.to(padded_labels(args.batch, args.real, rows, args.size, args.classes))
        assignment = simota_assign(outputs, labels, *grid)
        reference = reference if reference is not None else assignment
        same = bool(torch.equal(assignment.fg_mask, reference.fg_mask)
                    and torch.equal(assignment.matched_gt_inds, reference.matched_gt_inds))
        assign_ms = median_ms(lambda: simota_assign(outputs, labels, *grid), args.repeats, policy.synchronize)
        with torch.no_grad():
            loss_ms = median_ms(lambda: compute_losses(outputs, labels, *grid, None, num_classes=args.classes,
                                                       use_l1=False, iou_loss=IOUloss(reduction="none")),
                                args.repeats, policy.synchronize)
        table.append([rows, f"{assign_ms:.1f}", f"{loss_ms:.1f}", same])
    print(f"{args.name} head, {args.size} px ({outputs.shape[1]} anchors), batch {args.batch}, {args.classes} "
          f"class(es), {args.real} real boxes per image; device {policy.device}, torch threads "
          f"{torch.get_num_threads()}, median of {args.repeats}")
    print(tabulate(table, headers=["label rows", "ms / assignment", "ms / loss (with assignment)",
                                   "same assignment"], tablefmt="github"))


if __name__ == "__main__":
    run_cli(main)
