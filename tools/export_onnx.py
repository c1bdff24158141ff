#!/usr/bin/env python3
"""Export a YOLOX model to ONNX (traced on the CPU, like upstream)."""
import argparse
import importlib.util
import os

import torch
from loguru import logger
from torch import nn

from yolox.cli.flags import add_device_args
from yolox.utils.user_errors import CLIParser, run_cli

from yolox.exp import get_exp
from yolox.models.network_blocks import SiLU
from yolox.utils.checkpoint import load_run_model
from yolox.utils.model_utils import replace_module


def make_parser() -> argparse.ArgumentParser:
    parser = CLIParser("YOLOX onnx deploy")
    parser.add_argument("--output-name", type=str, default="yolox.onnx", help="output name of models")
    parser.add_argument("--input", default="images", type=str, help="input node name of onnx model")
    parser.add_argument("--output", default="output", type=str, help="output node name of onnx model")
    parser.add_argument("-o", "--opset", default=11, type=int, help="onnx opset version")
    parser.add_argument("--batch-size", type=int, default=1, help="batch size")
    parser.add_argument("--dynamic", action="store_true", help="whether the input shape should be dynamic or not")
    parser.add_argument("--no-onnxsim", action="store_true", help="use onnxsim or not")
    parser.add_argument("-f", "--exp_file", default=None, type=str, help="experiment description file")
    parser.add_argument("-expn", "--experiment-name", type=str, default=None)
    parser.add_argument("-n", "--name", type=str, default=None, help="model name")
    parser.add_argument("-c", "--ckpt", default=None, type=str, help="ckpt path (default: best_ckpt.pth)")
    parser.add_argument("--decode_in_inference", action="store_true", help="decode in inference or not")
    parser.add_argument("--trust-ckpt", dest="trust_ckpt", default=False, action="store_true",
                        help="allow checkpoints that need full unpickling (only for files you trust)")
    add_device_args(parser)
    parser.add_argument("opts", default=None, nargs=argparse.REMAINDER, help="KEY VALUE pairs to modify the exp")
    return parser


def require_module(name: str, why: str) -> None:
    if importlib.util.find_spec(name) is None:
        raise SystemExit(f"{why} needs the '{name}' package, which is not installed: pip install {name}")


def export(exp, args) -> str:
    """Trace the model with a [batch, 3, test_h, test_w] input and write args.output_name."""
    if args.device not in ("auto", "cpu") or args.fp16 or args.bf16:
        raise SystemExit(f"--device {args.device}{' --fp16' if args.fp16 else ''}{' --bf16' if args.bf16 else ''}: "
                         "ONNX export traces in fp32 on the CPU; use --device cpu (or auto) without --fp16/--bf16")
    if not args.experiment_name:
        args.experiment_name = exp.exp_name
    model = load_run_model(exp, args.ckpt, os.path.join(exp.output_dir, args.experiment_name),
                           trust_pickle=args.trust_ckpt)
    model.eval()
    model = replace_module(model, nn.SiLU, SiLU)
    model.head.decode_in_inference = args.decode_in_inference

    dummy_input = torch.randn(args.batch_size, 3, exp.test_size[0], exp.test_size[1])
    dynamic_axes = {args.input: {0: "batch"}, args.output: {0: "batch"}} if args.dynamic else None
    torch.onnx.export(model, dummy_input, args.output_name, input_names=[args.input], output_names=[args.output],
                      dynamic_axes=dynamic_axes, opset_version=args.opset, dynamo=False)
    logger.info(f"generated onnx model named {args.output_name}")
    if not args.no_onnxsim:
        simplify(args.output_name)
    return args.output_name


def simplify(path: str) -> None:
    require_module("onnxsim", "ONNX simplification (skip it with --no-onnxsim)")
    import onnx  # lazy: onnx and onnxsim are optional, needed only for export
    from onnxsim import simplify as onnx_simplify  # lazy: see above

    simplified, ok = onnx_simplify(onnx.load(path))
    if not ok:
        raise SystemExit(f"{path}: onnx-simplifier could not validate the simplified model; rerun with --no-onnxsim")
    onnx.save(simplified, path)
    logger.info(f"generated simplified onnx model named {path}")


def run(argv=None) -> str:
    args = make_parser().parse_args(argv)
    require_module("onnx", "ONNX export")
    logger.info(f"args value: {args}")
    exp = get_exp(args.exp_file, args.name)
    exp.merge(args.opts)
    return export(exp, args)


def cli() -> None:
    """The `yolox-export-onnx` command: run() with user errors as one line and exit status 2."""
    run_cli(run)


if __name__ == "__main__":
    cli()
