"""Random affine + horizontal flip on a uint8 batch: kornia.augmentation vs plain torch (affine_grid/grid_sample).

    python benchmarks/bench_device_affine.py --device cpu --batch 64 --size 640 --repeats 3
    python benchmarks/bench_device_affine.py --device cuda --batch 64 --size 640 --repeats 20

Both paths take the same uint8 [B, 3, H, W] batch, turn it into float, and warp it with a random rotation,
scale, shear, translation and a horizontal flip per image (bilinear, pad 114). Prints the median seconds per
batch and images per second of each as a table, and the largest pixel difference between the torch path and
kornia when the torch path is handed kornia's own matrices (how far the two compute the same warp).
"""
import statistics
import time
from typing import Callable

import torch
import torch.nn.functional as F
from tabulate import tabulate

from yolox.utils.user_errors import CLIParser, run_cli

PAD_VALUE = 114.0


def random_matrices(batch: int, size: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """[B, 3, 3] pixel-space affines: YOLOX's ranges (rotation 10 deg, scale 0.1-2, shear 2 deg, 10% shift)
    about the image centre, then a horizontal flip for half of the images."""
    def uniform(low: float, high: float) -> torch.Tensor:
        return torch.empty(batch).uniform_(low, high, generator=generator)

    angle, scale = torch.deg2rad(uniform(-10, 10)), uniform(0.1, 2.0)
    shear_x, shear_y = torch.tan(torch.deg2rad(uniform(-2, 2))), torch.tan(torch.deg2rad(uniform(-2, 2)))
    shift_x, shift_y = uniform(-0.1, 0.1) * size, uniform(-0.1, 0.1) * size
    flip = torch.rand(batch, generator=generator) < 0.5
    centre = size / 2
    eye = torch.eye(3).repeat(batch, 1, 1)
    rotate_scale, shear, move, mirror = eye.clone(), eye.clone(), eye.clone(), eye.clone()
    rotate_scale[:, 0, 0], rotate_scale[:, 0, 1] = scale * torch.cos(angle), -scale * torch.sin(angle)
    rotate_scale[:, 1, 0], rotate_scale[:, 1, 1] = scale * torch.sin(angle), scale * torch.cos(angle)
    shear[:, 0, 1], shear[:, 1, 0] = shear_x, shear_y
    move[:, 0, 2], move[:, 1, 2] = centre + shift_x, centre + shift_y
    to_origin = eye.clone()
    to_origin[:, 0, 2] = to_origin[:, 1, 2] = -centre
    mirror[flip, 0, 0], mirror[flip, 0, 2] = -1.0, size - 1.0
    return (mirror @ move @ shear @ rotate_scale @ to_origin).to(device)


def torch_warp(images: torch.Tensor, matrices: torch.Tensor) -> torch.Tensor:
    """Warp float images by pixel-space affines with one affine_grid + grid_sample (pad PAD_VALUE)."""
    batch, _, height, width = images.shape
    # normalised [-1, 1] output coords -> pixel coords -> inverse affine -> normalised input coords
    to_pixels = torch.tensor([[width / 2, 0, (width - 1) / 2], [0, height / 2, (height - 1) / 2], [0, 0, 1]],
                             device=images.device, dtype=images.dtype)
    to_unit = torch.linalg.inv(to_pixels)
    theta = (to_unit @ torch.linalg.inv(matrices.to(images.dtype)) @ to_pixels)[:, :2]
    grid = F.affine_grid(theta, [batch, 3, height, width], align_corners=False)
    shifted = F.grid_sample(images - PAD_VALUE, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return shifted + PAD_VALUE


def kornia_pipeline(size: int):
    """kornia.augmentation with the same ranges; returns (augment, warp_with_matrices)."""
    import kornia.augmentation as K
    from kornia.geometry.transform import warp_affine

    augment = K.AugmentationSequential(
        K.RandomAffine(degrees=10, translate=(0.1, 0.1), scale=(0.1, 2.0), shear=2, p=1.0,
                       padding_mode="zeros"),
        K.RandomHorizontalFlip(p=0.5))

    def warp(images: torch.Tensor, matrices: torch.Tensor) -> torch.Tensor:
        shifted = warp_affine(images - PAD_VALUE, matrices[:, :2], (size, size), mode="bilinear",
                              padding_mode="zeros", align_corners=True)
        return shifted + PAD_VALUE

    return augment, warp


def median_seconds(step: Callable[[], torch.Tensor], repeats: int, sync: Callable[[], None]) -> float:
    """Median wall time of `step` over `repeats` runs after one warm-up, synchronised with the device."""
    step()
    sync()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = CLIParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--size", type=int, default=640)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from yolox.utils.device import memory_backend_for, select_device

    device = select_device(args.device)
    sync = memory_backend_for(device).synchronize
    generator = torch.Generator().manual_seed(0)
    batch = torch.randint(0, 256, (args.batch, 3, args.size, args.size), dtype=torch.uint8, generator=generator)
    batch = batch.to(device)
    augment, kornia_warp = kornia_pipeline(args.size)

    def torch_step() -> torch.Tensor:
        return torch_warp(batch.float(), random_matrices(args.batch, args.size, generator, device))

    def kornia_step() -> torch.Tensor:
        # kornia's RandomAffine fills with 0; shifting by the pad value gives 114 like the torch path
        return augment(batch.float() - PAD_VALUE) + PAD_VALUE

    matrices = random_matrices(args.batch, args.size, generator, device)
    images = batch.float()
    difference = float((torch_warp(images, matrices) - kornia_warp(images, matrices)).abs().max())
    rows = []
    for name, step in (("plain torch (affine_grid + grid_sample)", torch_step),
                       ("kornia.augmentation (RandomAffine + RandomHorizontalFlip)", kornia_step)):
        seconds = median_seconds(step, args.repeats, sync)
        rows.append([name, f"{seconds * 1000:.1f}", f"{args.batch / seconds:.0f}"])
    print(f"device {device}, batch {args.batch} x 3 x {args.size} x {args.size} uint8 -> float32, "
          f"median of {args.repeats}; torch threads {torch.get_num_threads()}")
    print(tabulate(rows, headers=["implementation", "ms / batch", "img/s"], tablefmt="github"))
    print(f"same matrices, torch path vs kornia warp_affine: max |pixel difference| {difference:.3f} (of 255)")


if __name__ == "__main__":
    run_cli(main)
