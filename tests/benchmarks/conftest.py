import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def load_benchmark(name: str):
    """Import benchmarks/<name>.py as a module (benchmarks/ is scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(f"benchmark_{name}", REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
