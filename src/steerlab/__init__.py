"""steerlab: steer language models through their internal representations, and measure the cost.

Every function behind a CLI command is importable from here under its own name:

============================  ==========================================
``steerlab extract``          :func:`extract`
``steerlab info``             :meth:`SteeringVector.load` / ``describe``
``steerlab generate``         :func:`generate`
``steerlab diff``             :func:`model_diff`
``steerlab compare``          :func:`compare`
``steerlab sweep``            :func:`sweep`
``steerlab calibrate``        :func:`calibrate`
``steerlab matrix``           :func:`steering_matrix`
``steerlab fold``             :func:`fold` (``--format peft``: :func:`fold_adapter`)
``steerlab eval``             :func:`evaluate_models`
``steerlab finetune``         :func:`finetune`
``steerlab tune``             :func:`tune`
``steerlab dataset qa``       :func:`answer_questions`
``steerlab dataset pairs``    :func:`pair_honest_deceptive`
``steerlab demo``             :func:`run_demo`
``steerlab run``              :func:`run_experiment` (``--dry-run``: :func:`plan_experiment`)
``steerlab report``           :func:`write_report`
``steerlab schema``           :func:`experiment_schema`
============================  ==========================================

Quick start::

    import steerlab as sl
    model, tokenizer = sl.load_model("default")
    pairs = sl.load_pairs("pairs.jsonl")
    vector = sl.extract(model, tokenizer, pairs, method="pca_diff", layers="all")
    vector.save("honesty.safetensors")
    with sl.steer(model, vector, coefficient=0.2, layers=[15], scale="norm"):
        ...
    run = sl.tune(model, tokenizer, vector, chats, "runs/honest",
                  sl.RepresentationConfig(layers=(12, 13, 14), rep_weight=1.0))
    report = sl.evaluate_models(["default", "runs/honest"], "runs/eval",
                                sl.HonestySuite(vector=vector))

``steerlab.evaluate`` is the evaluation package; calling it (``sl.evaluate(...)``) still
works but is deprecated in favour of :func:`evaluate_models`.
"""

from steerlab import evaluate  # the package (calling it is deprecated: use evaluate_models)
from steerlab.chat import format_chat
from steerlab.data import (
    Chat,
    ContrastPair,
    builtin_pairs,
    load_chats,
    load_pairs,
    pairs_from_ab,
)
from steerlab.data.qa import answer_questions, pair_honest_deceptive
from steerlab.demo import run_demo
from steerlab.errors import SteerlabError, SteerlabWarning
from steerlab.evaluate import (
    Calibration,
    EvalModel,
    HonestySuite,
    MatrixResult,
    MatrixSettings,
    SuiteResult,
    SweepFit,
    SweepResult,
    calibrate,
    evaluate_models,
    steering_matrix,
    sweep,
)
from steerlab.export.adapter import fold_adapter
from steerlab.export.fold import fold
from steerlab.extract import Comparison, compare, extract
from steerlab.extract.model_diff import model_diff
from steerlab.generate import Generation, generate
from steerlab.layers import find_layers
from steerlab.models import load_model, model_identity
from steerlab.provenance import library_version
from steerlab.record import TextExample, measure_activation_norms, record, record_tokens
from steerlab.report.html import write_report
from steerlab.runner import RunResult, plan_experiment, run_experiment
from steerlab.runner import json_schema as experiment_schema
from steerlab.steer import SCALES, SteerSpec, steer
from steerlab.tuning import (
    FinetuneConfig,
    FinetuneResult,
    RepresentationConfig,
    RunRecord,
    finetune,
    read_run,
    tune,
    tuning_chats,
)
from steerlab.vector import SteeringVector, VectorMetadata

__version__ = library_version()

__all__ = [
    "SCALES",
    "Calibration",
    "Chat",
    "Comparison",
    "ContrastPair",
    "EvalModel",
    "FinetuneConfig",
    "FinetuneResult",
    "Generation",
    "HonestySuite",
    "MatrixResult",
    "MatrixSettings",
    "RepresentationConfig",
    "RunRecord",
    "RunResult",
    "SteerSpec",
    "SteeringVector",
    "SteerlabError",
    "SteerlabWarning",
    "SuiteResult",
    "SweepFit",
    "SweepResult",
    "TextExample",
    "VectorMetadata",
    "__version__",
    "answer_questions",
    "builtin_pairs",
    "calibrate",
    "compare",
    "evaluate",
    "evaluate_models",
    "experiment_schema",
    "extract",
    "find_layers",
    "finetune",
    "fold",
    "fold_adapter",
    "format_chat",
    "generate",
    "load_chats",
    "load_model",
    "load_pairs",
    "measure_activation_norms",
    "model_diff",
    "model_identity",
    "pair_honest_deceptive",
    "pairs_from_ab",
    "plan_experiment",
    "read_run",
    "record",
    "record_tokens",
    "run_demo",
    "run_experiment",
    "steer",
    "steering_matrix",
    "sweep",
    "tune",
    "tuning_chats",
    "write_report",
]
