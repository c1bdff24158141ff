"""Process-level environment set-up the CLI tools run before anything else: file limit, OpenCV threads, NCCL, OMP."""
import glob
import os

import cv2
from loguru import logger

__all__ = ["configure_module", "configure_nccl", "configure_omp"]


def configure_module(ulimit_value: int = 8192) -> None:
    """Raise the open-file limit (data loader workers share many fds) and keep OpenCV single-threaded
    without OpenCL, so it does not fight the loader workers for cores."""
    try:
        import resource  # lazy: POSIX only; other systems keep their default limit
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        target = ulimit_value if hard == resource.RLIM_INFINITY else min(ulimit_value, hard)
        if soft < target:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ImportError, ValueError, OSError):
        pass  # not available on this OS or not permitted: the default limit still works
    os.environ["OPENCV_OPENCL_RUNTIME"] = "disabled"
    cv2.setNumThreads(0)
    if hasattr(cv2, "ocl"):  # some OpenCV builds have no OpenCL module
        cv2.ocl.setUseOpenCL(False)


def _roce_v2_hcas(sys_root: str = "/sys/class/infiniband") -> list:
    """mlx5 adapters with at least one RoCE v2 gid type."""
    hcas = []
    for device in sorted(glob.glob(os.path.join(sys_root, "mlx5_*"))):
        for gid_type_file in glob.glob(os.path.join(device, "ports", "*", "gid_attrs", "types", "*")):
            try:
                with open(gid_type_file) as handle:
                    if "v2" in handle.read():
                        hcas.append(os.path.basename(device))
                        break
            except OSError:
                continue
    return hcas


def configure_nccl() -> None:
    """NCCL settings for multi-GPU CUDA runs (the caller only invokes this when the backend is nccl).
    Unlike upstream the adapter scan runs in Python, so no shell error text ends up in NCCL_IB_HCA."""
    os.environ["NCCL_LAUNCH_MODE"] = "PARALLEL"
    hcas = _roce_v2_hcas()
    if hcas:
        os.environ["NCCL_IB_HCA"] = ",".join(hcas)
    os.environ["NCCL_IB_GID_INDEX"] = "3"
    os.environ["NCCL_IB_TC"] = "106"


def configure_omp(num_threads: int = 1) -> None:
    """One OpenMP thread per process in multi-process runs unless the user chose otherwise."""
    if "OMP_NUM_THREADS" not in os.environ:
        os.environ["OMP_NUM_THREADS"] = str(num_threads)
        logger.info(f"OMP_NUM_THREADS was unset; set to {num_threads} for multi-process training. "
                    "Set it yourself to tune data loading and CPU work.")
