"""steerlab: steer language models through their internal representations, and measure the cost.

Quick start::

    import steerlab as sl
    model, tokenizer = sl.load_model("default")
    pairs = sl.load_pairs("pairs.jsonl")
    vector = sl.extract(model, tokenizer, pairs, method="pca_diff", layers="all")
    vector.save("honesty.safetensors")
    with sl.steer(model, vector, coefficient=4.0, layers=[15]):
        ...
    run = sl.tune(model, tokenizer, vector, chats, "runs/honest",
                  sl.RepresentationConfig(layers=(12, 13, 14), rep_weight=1.0))
    report = sl.evaluate(["default", "runs/honest"], "runs/eval", sl.HonestySuite(vector=vector))
"""

from steerlab import evaluate  # the package; callable: evaluate(models, output_dir, suite)
from steerlab.chat import format_chat
from steerlab.data import ContrastPair, builtin_pairs, load_pairs, pairs_from_ab
from steerlab.errors import SteerlabError
from steerlab.evaluate import SweepResult, sweep
from steerlab.evaluate.suite import EvalModel, HonestySuite, SuiteResult
from steerlab.extract import extract
from steerlab.generate import generate
from steerlab.layers import find_layers
from steerlab.models import load_model, model_identity
from steerlab.provenance import library_version
from steerlab.record import TextExample, record, record_tokens
from steerlab.steer import SteerSpec, steer
from steerlab.tuning.finetune import FinetuneConfig
from steerlab.tuning.represent import RepresentationConfig, tune
from steerlab.tuning.sources import tuning_chats
from steerlab.vector import SteeringVector, VectorMetadata

__version__ = library_version()

__all__ = [
    "ContrastPair",
    "EvalModel",
    "FinetuneConfig",
    "HonestySuite",
    "RepresentationConfig",
    "SteerSpec",
    "SteeringVector",
    "SteerlabError",
    "SuiteResult",
    "SweepResult",
    "TextExample",
    "VectorMetadata",
    "__version__",
    "builtin_pairs",
    "evaluate",
    "extract",
    "find_layers",
    "format_chat",
    "generate",
    "load_model",
    "load_pairs",
    "model_identity",
    "pairs_from_ab",
    "record",
    "record_tokens",
    "steer",
    "sweep",
    "tune",
    "tuning_chats",
]
