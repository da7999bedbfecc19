"""Experiments as one file: a YAML spec of models and stages, run with caching, one report.

``steerlab run SPEC.yaml -o DIR`` (:func:`run_experiment`) validates the spec
(:mod:`.spec`, one-line errors naming the file, line and key), orders its stages
(:mod:`.graph`), runs each as the ``steerlab`` command of its kind (:mod:`.commands`) in a
folder keyed by a content hash of everything it depends on, skips the finished ones, and
writes ``DIR/report.html``. ``steerlab schema`` prints the spec's JSON Schema
(:func:`json_schema`).
"""

from steerlab.runner.graph import Plan, StageNode
from steerlab.runner.run import RunResult, StageFailed, plan_experiment, run_experiment
from steerlab.runner.spec import json_schema

__all__ = [
    "Plan",
    "RunResult",
    "StageFailed",
    "StageNode",
    "json_schema",
    "plan_experiment",
    "run_experiment",
]
