"""Detection evaluators."""
from yolox.evaluators.coco_evaluator import COCOEvaluator

__all__ = ["COCOEvaluator"]
