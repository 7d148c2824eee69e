"""Evaluation: the evaluator classifier (``evaluator``), scores as math on features
(``scores``), and scoring a run (``run``). Imports no training code."""
from .evaluator import EVALUATOR_SIZES, load_evaluator
from .run import Scorer, evaluate_run, sample_images

__all__ = ["EVALUATOR_SIZES", "Scorer", "evaluate_run", "load_evaluator", "sample_images"]
