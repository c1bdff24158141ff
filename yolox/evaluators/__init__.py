"""Detection evaluators."""
from yolox.evaluators.coco_evaluator import COCOEvaluator
from yolox.evaluators.voc_evaluator import VOCEvaluator

__all__ = ["COCOEvaluator", "VOCEvaluator"]
