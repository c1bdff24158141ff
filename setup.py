"""Install the yolox package: YOLOX that trains, evaluates and runs on CUDA, Apple MPS and CPU."""
import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).resolve().parent
VERSION = re.search(r'__version__ = "([^"]+)"', (HERE / "yolox" / "__init__.py").read_text()).group(1)

setup(
    name="yolox",
    version=VERSION,
    description="YOLOX object detector that trains and runs the same on CUDA, Apple Silicon (MPS) and CPU",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.9",
    packages=find_packages(exclude=("tests", "tests.*", "tools", "exps", "benchmarks"))
    + ["yolox.exp.default", "yolox.exp.crater", "yolox.tools"],
    # the standard and crater exp files and the user commands ship inside the package (yolox/exp/default,
    # yolox/exp/crater and yolox/tools add the same folders in a source checkout)
    package_dir={"yolox.exp.default": "exps/default", "yolox.exp.crater": "exps/crater", "yolox.tools": "tools"},
    # the fused BatchNorm+SiLU CPU kernel's source, compiled on first use (yolox/models/fused_bn_silu.py)
    package_data={"yolox.models": ["csrc/*.cpp"]},
    # the user commands of tools/, runnable from any folder (tools/README.md says what each does)
    entry_points={"console_scripts": [
        "yolox-train = yolox.tools.train:cli",
        "yolox-train-craters = yolox.tools.train_crater_device_aware:cli",
        "yolox-eval = yolox.tools.eval:cli",
        "yolox-demo = yolox.tools.demo:cli",
        "yolox-export-onnx = yolox.tools.export_onnx:cli",
        "yolox-detect-craters = yolox.tools.detect_craters:cli",
        "yolox-compare-catalogues = yolox.tools.compare_catalogues:cli",
        "yolox-convert-craters = yolox.tools.convert_craters:cli",
        "yolox-make-crater-mosaic = yolox.tools.make_crater_mosaic:cli",
        "yolox-make-crater-tiles = yolox.tools.make_crater_tiles:cli",
        "yolox-check-device = yolox.tools.check_device:cli",
    ]},
    install_requires=[
        # torch is never pinned: Mac users install the build that suits their machine.
        "torch>=2.1",
        "torchvision>=0.16",
        "numpy",
        "loguru",
        "opencv-python-headless",
        "pycocotools",
        "tabulate",
        "psutil",
        # torch's C++ extension loader builds the fused BatchNorm+SiLU CPU kernel with it
        "ninja",
    ],
    extras_require={
        # the test extra brings every optional library, so CI runs the paths with them (absence is simulated)
        "test": ["pytest", "matplotlib", "faster-coco-eval", "tqdm"],
        "plots": ["matplotlib"],
        "eval": ["faster-coco-eval"],
        "tensorboard": ["tensorboard"],
        # windowed raster reading and map/lon-lat columns for tools/detect_craters.py
        "geo": ["rasterio", "pyproj"],
        # craterstats 3.2.1 uses scipy.integrate.simps (gone in scipy 1.14) and, to plot, np.Inf (gone in numpy 2)
        "craterstats": ["craterstats", "scipy<1.14", "numpy<2"],
    },
)
