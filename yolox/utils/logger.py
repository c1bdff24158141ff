"""Loguru set-up for training/eval runs and the optional TensorBoard metric writer."""
import inspect
import os
import sys
from typing import Dict, Optional

from loguru import logger

from yolox.utils.progress import terminal_bar_possible, terminal_sink

__all__ = ["setup_logger", "redirect_sys_output", "StreamToLoguru", "MetricWriter", "build_metric_writer"]

LOG_FORMAT = "<green>{time:YYYY-MM-DD HH:mm:ss}</green> | <level>{level: <8}</level> | " \
             "<cyan>{name}</cyan>:<cyan>{line}</cyan> - <level>{message}</level>"


class StreamToLoguru:
    """A stdout/stderr stand-in: writes coming from the listed modules go to the logger, the
    rest pass through to the real stream."""

    def __init__(self, stream, level: str = "INFO", caller_names=("apex", "pycocotools")):
        self.stream = stream
        self.level = level
        self.caller_names = tuple(caller_names)
        self._line_buffer = ""

    def _caller_is_listed(self) -> bool:
        frame = inspect.currentframe()
        try:
            frame = frame.f_back.f_back if frame and frame.f_back else None
            module = frame.f_globals.get("__name__", "") if frame else ""
        finally:
            del frame
        return module.split(".")[0] in self.caller_names

    def write(self, text: str) -> int:
        if not self._caller_is_listed():
            return self.stream.write(text)
        for line in text.rstrip().splitlines():
            logger.opt(depth=2).log(self.level, line.rstrip())
        return len(text)

    def flush(self) -> None:
        self.stream.flush()

    def isatty(self) -> bool:
        return getattr(self.stream, "isatty", lambda: False)()

    def fileno(self) -> int:
        return self.stream.fileno()

    def __getattr__(self, name):
        return getattr(self.stream, name)


def redirect_sys_output(level: str = "INFO") -> None:
    if not isinstance(sys.stdout, StreamToLoguru):
        sys.stdout = StreamToLoguru(sys.stdout, level)
    if not isinstance(sys.stderr, StreamToLoguru):
        sys.stderr = StreamToLoguru(sys.stderr, level)


def _stderr_sink():
    """The real stderr; on a terminal with tqdm, written through tqdm so progress bars stay intact."""
    return terminal_sink if terminal_bar_possible() else sys.__stderr__


def setup_logger(save_dir: str, distributed_rank: int = 0, filename: str = "log.txt",
                 mode: str = "a") -> None:
    """Rank 0 logs to stderr and to <save_dir>/<filename>; other ranks log warnings and errors only."""
    logger.remove()
    save_file = os.path.join(save_dir, filename)
    if mode == "o" and os.path.exists(save_file):
        os.remove(save_file)
    if distributed_rank == 0:
        logger.add(_stderr_sink(), format=LOG_FORMAT, level="INFO", enqueue=False,
                   colorize=bool(sys.__stderr__.isatty()))
        logger.add(save_file, format=LOG_FORMAT, level="INFO", mode="a" if mode == "o" else mode)
    else:
        logger.add(sys.__stderr__, format=LOG_FORMAT, level="WARNING", enqueue=False)
    redirect_sys_output("INFO")


class MetricWriter:
    """Scalar sink for training metrics; a no-op base class."""

    def add_scalars(self, scalars: Dict[str, float], step: int) -> None:
        pass

    def close(self) -> None:
        pass


class TensorBoardWriter(MetricWriter):
    def __init__(self, log_dir: str):
        from torch.utils.tensorboard import SummaryWriter  # lazy: tensorboard is optional
        self.writer = SummaryWriter(log_dir)

    def add_scalars(self, scalars: Dict[str, float], step: int) -> None:
        for tag, value in scalars.items():
            self.writer.add_scalar(tag, value, step)

    def close(self) -> None:
        self.writer.close()


def build_metric_writer(kind: str, file_name: str) -> Optional[MetricWriter]:
    """Writer for `--logger`: TensorBoard when importable (skipped with a warning otherwise).

    wandb and mlflow are not wired in this build: asking for them fails with a one-line reason.
    """
    if kind == "tensorboard":
        try:
            return TensorBoardWriter(os.path.join(file_name, "tensorboard"))
        except ImportError:
            logger.warning("tensorboard is not installed: training metrics are written to the log only "
                           "(pip install tensorboard to get event files)")
            return MetricWriter()
    if kind in ("wandb", "mlflow"):
        raise ValueError(f"--logger {kind} is not supported by this trainer; use --logger tensorboard")
    raise ValueError(f"Unknown logger '{kind}': use tensorboard")
