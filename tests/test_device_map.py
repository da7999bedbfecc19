"""Model parallel on the CPU: a model whose layers accelerate dispatches (some offloaded to
disk or to the CPU, their weights on the ``meta`` device until their layer runs) steers,
records, extracts, generates, sweeps, calibrates and serves exactly as the same model loaded
whole.

A CPU-only machine has one device, so these maps split the layers between "run in place"
and "offloaded": that is what exercises accelerate's dispatch (its hooks move weights and
tensors around each module's forward) without a GPU.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import torch
from accelerate import cpu_offload, dispatch_model
from accelerate.hooks import AlignDevicesHook, add_hook_to_module
from peft import LoraConfig, get_peft_model

import steerlab as sl
from conftest import ARCHITECTURES, make_model
from steerlab.chat import format_chat, messages_for
from steerlab.data.evalsets import ABItem, MultipleChoiceItem
from steerlab.data.pairs import builtin_pairs
from steerlab.errors import ModelLoadError, SpecError
from steerlab.evaluate.tasks import ABBehaviorTask, MultipleChoiceTask, PerplexityTask
from steerlab.export.adapter import fold_adapter
from steerlab.export.fold import fold
from steerlab.hooks import StopForward, hook_count, hooked
from steerlab.layers import find_layers
from steerlab.models import load_model, model_device, peft_wrapping
from steerlab.models.devices import check_device_map, offloaded_parameters
from steerlab.serve.config import ServeConfig
from steerlab.serve.engine import BatchEngine, Row, RowSteering, Ticket
from steerlab.serve.protocol import Sampling
from steerlab.vector import SteeringVector

PROMPTS = ["Tell me about your day.", "What is the capital of France?"]
INPUTS = ["The quick brown fox", "I am happy today, the weather is lovely and bright."]
ATOL = 1e-5
AB = tuple(
    ABItem(f"Question {i}: is it true?\n\nChoices:\n (A) yes\n (B) no", m, n, f"({m})", f"({n})")
    for i, (m, n) in enumerate([("A", "B"), ("B", "A"), ("A", "B")])
)
MC = tuple(
    MultipleChoiceItem(f"What is {i} + {i}?", (str(2 * i), str(i), "7", "9"), (i % 4), "maths")
    for i in range(1, 4)
)
TEXTS = ("The quick brown fox jumps over the lazy dog.", "I am happy today, the weather is lovely.")


def split_map(model: Any) -> dict[str, str]:
    """A device map of ``model``'s top modules: the input embeddings, block 1 and the output
    head on disk, everything else on the CPU."""
    blocks = find_layers(model)
    embeddings, head = model.get_input_embeddings(), model.get_output_embeddings()
    names = {module: name for name, module in model.named_modules()}
    stack = blocks.path.rsplit(".", 1)[0]
    device_map = {}
    for child, module in model.get_submodule(stack).named_children():
        full = f"{stack}.{child}"
        if full == blocks.path:
            for index in range(len(blocks)):
                device_map[f"{full}.{index}"] = "disk" if index == 1 else "cpu"
        else:
            device_map[full] = "disk" if module is embeddings else "cpu"
    device_map[names[head]] = "disk"
    return device_map


def save(arch: str, folder: Path) -> Path:
    model, tokenizer = make_model(arch, layers=3, hidden=32)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory):
    """(whole model, the same model device-mapped by load_model, tokenizer, vector)."""
    folder = save("llama", tmp_path_factory.mktemp("tiny-llama"))
    whole, tokenizer = load_model(str(folder))
    mapped, _ = load_model(str(folder), device_map=split_map(whole))
    vector = sl.extract(
        whole, tokenizer, builtin_pairs("happy_sad", limit=8), "mean_diff", "all", progress=False
    )
    return whole, mapped, tokenizer, vector


def same(a: Any, b: Any) -> bool:
    """Equal to float tolerance, through tensors, mappings and sequences."""
    if isinstance(a, torch.Tensor):
        return a.shape == b.shape and torch.allclose(a.cpu(), b.cpu(), atol=ATOL)
    if isinstance(a, Mapping):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float):
        return a == pytest.approx(b, abs=ATOL)
    return bool(a == b)


def steered_logits(model: Any, tokenizer: Any, vector: SteeringVector, c: float, **options):
    batch = tokenizer(INPUTS, return_tensors="pt", padding=True).to(model_device(model))
    with torch.no_grad(), sl.steer(model, vector, c, layers="all", **options):
        return model(**batch).logits


def test_the_map_really_offloads(pair) -> None:
    _, mapped, _, _ = pair
    assert mapped.get_input_embeddings().weight.device.type == "meta"
    assert set(mapped.hf_device_map.values()) == {"cpu", "disk"}
    assert offloaded_parameters(mapped)
    # Inputs go where the embeddings run, never to the meta device.
    assert model_device(mapped) == torch.device("cpu")


@pytest.mark.parametrize(
    "options",
    [{}, {"positions": "generated"}, {"operator": "ablate"}, {"scale": "norm"}],
    ids=["add", "generated", "ablate", "norm"],
)
def test_steered_logits_equal_the_whole_models(pair, options) -> None:
    whole, mapped, tokenizer, vector = pair
    coefficient = 1.0 if options.get("operator") == "ablate" else 0.5
    expected = steered_logits(whole, tokenizer, vector, coefficient, **options)
    assert same(steered_logits(mapped, tokenizer, vector, coefficient, **options), expected)
    assert hook_count(mapped) == 0


def test_coefficient_zero_changes_nothing(pair) -> None:
    _, mapped, tokenizer, vector = pair
    batch = tokenizer(INPUTS, return_tensors="pt", padding=True)
    with torch.no_grad():
        plain = mapped(**batch).logits
    assert same(steered_logits(mapped, tokenizer, vector, 0.0), plain)


def test_everywhere_ablation_steers_the_offloaded_embeddings(pair) -> None:
    whole, mapped, tokenizer, vector = pair
    options = {"operator": "ablate", "sites": "everywhere"}
    batch = tokenizer(INPUTS, return_tensors="pt", padding=True)
    results = []
    for model in (whole, mapped):
        with torch.no_grad(), sl.steer(model, vector, 1.0, layers=[1], **options):
            results.append(model(**batch).logits)
    assert same(results[1], results[0])


def test_recording_gives_the_same_activations_on_the_cpu(pair) -> None:
    whole, mapped, tokenizer, _ = pair
    for position in ("last", "mean"):
        got = sl.record(mapped, tokenizer, INPUTS, "all", position)
        assert same(got, sl.record(whole, tokenizer, INPUTS, "all", position))
        assert {tensor.device.type for tensor in got.values()} == {"cpu"}
    tokens = sl.record_tokens(mapped, tokenizer, INPUTS, [0, 2])
    assert same(tokens, sl.record_tokens(whole, tokenizer, INPUTS, [0, 2]))


def test_stopping_early_leaves_offloaded_weights_offloaded(pair) -> None:
    _, mapped, tokenizer, _ = pair
    before = offloaded_parameters(mapped)
    sl.record(mapped, tokenizer, INPUTS, [1])  # stops right after the offloaded block
    assert offloaded_parameters(mapped) == before


def test_extract_and_model_diff_match(pair) -> None:
    whole, mapped, tokenizer, _ = pair
    pairs = builtin_pairs("happy_sad", limit=8)
    got = sl.extract(mapped, tokenizer, pairs, "mean_diff", "all", progress=False)
    want = sl.extract(whole, tokenizer, pairs, "mean_diff", "all", progress=False)
    assert same(dict(got.directions), dict(want.directions))
    diff = sl.model_diff(whole, mapped, tokenizer, INPUTS, "all")
    assert all(float(d.norm()) < ATOL for d in diff.directions.values())


def test_generations_match(pair) -> None:
    whole, mapped, tokenizer, vector = pair
    for positions in ("all", "generated"):
        texts = [
            [g.text for g in sl.generate(model, tokenizer, PROMPTS, vector, [-2.0, 0.0, 2.0],
                                         layers="all", positions=positions, max_new_tokens=6)]
            for model in (whole, mapped)
        ]  # fmt: skip
        assert texts[1] == texts[0]
    assert hook_count(mapped) == 0


def test_sweep_rows_match(pair) -> None:
    whole, mapped, tokenizer, vector = pair
    tasks = [ABBehaviorTask("ab", AB), MultipleChoiceTask("mc", MC), PerplexityTask("ppl", TEXTS)]
    rows = [
        {r.key: r.value for r in sl.sweep(model, tokenizer, vector, [-1.0, 0.0, 1.0], tasks,
                                          progress=False, estimates=False).rows}
        for model in (whole, mapped)
    ]  # fmt: skip
    assert rows[1].keys() == rows[0].keys()
    for key, value in rows[0].items():
        assert rows[1][key] == pytest.approx(value, rel=1e-4, abs=ATOL), key


def test_calibration_matches(pair) -> None:
    whole, mapped, tokenizer, vector = pair
    results = [
        sl.calibrate(model, tokenizer, vector, grid=(0.1, 0.4), behavior_limit=2,
                     text=PerplexityTask("texts", TEXTS))
        for model in (whole, mapped)
    ]  # fmt: skip
    assert [(r.kind, r.coefficient) for r in results[1].rows] == [
        (r.kind, r.coefficient) for r in results[0].rows
    ]
    for got, want in zip(results[1].rows, results[0].rows, strict=True):
        assert got.value == pytest.approx(want.value, rel=1e-4, abs=ATOL)
    assert (results[1].positive, results[1].negative) == (results[0].positive, results[0].negative)


def test_nothing_is_left_patched_after_an_exception(pair) -> None:
    _, mapped, tokenizer, vector = pair
    hf_hooks = {name: m._hf_hook for name, m in mapped.named_modules() if hasattr(m, "_hf_hook")}
    offloaded, before = offloaded_parameters(mapped), hook_count(mapped)
    batch = tokenizer(INPUTS, return_tensors="pt", padding=True)

    def fail(_hidden: torch.Tensor) -> None:
        raise KeyboardInterrupt

    last_block = find_layers(mapped).blocks[2]
    with (  # raised mid-forward, after the offloaded block ran
        pytest.raises(KeyboardInterrupt),
        sl.steer(mapped, vector, 0.5, layers="all"),
        hooked(outputs=[(last_block, fail)]),
    ):
        mapped(**batch)
    with pytest.raises(StopForward), sl.steer(mapped, vector, 0.5, layers="all"):
        raise StopForward
    assert hook_count(mapped) == before
    assert {n: m._hf_hook for n, m in mapped.named_modules() if hasattr(m, "_hf_hook")} == hf_hooks
    assert offloaded_parameters(mapped) == offloaded
    with torch.no_grad():
        assert same(mapped(**batch).logits, steered_logits(mapped, tokenizer, vector, 0.0))


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_every_architecture_steers_and_records_device_mapped(arch: str, tmp_path: Path) -> None:
    folder = save(arch, tmp_path / arch)
    whole, tokenizer = load_model(str(folder))
    mapped, _ = load_model(str(folder), device_map=split_map(whole))
    assert offloaded_parameters(mapped)
    vector = sl.extract(
        whole, tokenizer, builtin_pairs("happy_sad", limit=4), "mean_diff", "all", progress=False
    )
    assert same(
        steered_logits(mapped, tokenizer, vector, 0.5),
        steered_logits(whole, tokenizer, vector, 0.5),
    )
    assert same(sl.record(mapped, tokenizer, INPUTS), sl.record(whole, tokenizer, INPUTS))


def test_accelerate_cpu_offload_and_dispatch_model(tmp_path: Path) -> None:
    whole, tokenizer = make_model("llama", layers=3, hidden=32)
    vector = sl.extract(
        whole, tokenizer, builtin_pairs("happy_sad", limit=4), "mean_diff", "all", progress=False
    )
    expected = steered_logits(whole, tokenizer, vector, 0.5)
    activations = sl.record(whole, tokenizer, INPUTS, "all", "mean")
    offloaded, _ = make_model("llama", layers=3, hidden=32)
    cpu_offload(offloaded, execution_device=torch.device("cpu"))  # every weight on meta
    dispatched, _ = make_model("llama", layers=3, hidden=32)
    dispatched = dispatch_model(
        dispatched, split_map(dispatched), main_device="cpu", offload_dir=str(tmp_path)
    )
    for model in (offloaded, dispatched):
        assert model.get_input_embeddings().weight.device.type == "meta"
        assert model_device(model) == torch.device("cpu")
        assert same(steered_logits(model, tokenizer, vector, 0.5), expected)
        assert same(sl.record(model, tokenizer, INPUTS, "all", "mean"), activations)


def test_model_device_asks_the_hook_of_a_module_holding_the_embeddings() -> None:
    model, _ = make_model("llama", layers=2, hidden=32)
    model.get_input_embeddings().to("meta")  # offloaded, and no hook of its own
    assert model_device(model) == torch.device("cpu")  # the first weight that is not offloaded
    add_hook_to_module(model.model, AlignDevicesHook(execution_device=torch.device("meta")))
    assert model_device(model) == torch.device("meta")  # the containing module's hook says
    # (Set by hand: attaching a hook would try to move the weightless embeddings.)
    model.get_input_embeddings()._hf_hook = AlignDevicesHook(execution_device=torch.device("cpu"))
    assert model_device(model) == torch.device("cpu")  # the embeddings' own hook comes first
    bare = torch.nn.Linear(2, 2, device="meta")
    assert model_device(bare) == torch.device("cpu")  # nothing anywhere: the CPU


@pytest.mark.parametrize(
    ("device_map", "message"),
    [
        ({"model.layers.0": "nope"}, r"'model.layers.0' -> device 'nope' is not a torch device"),
        ({"": "meta"}, r"holds no weights"),
        ({"": True}, r"is not a device"),
        ({"": [0]}, r"is not a device"),
        ({"model.layers.0": -1}, r"'model.layers.0' -> -1: a GPU index is 0 or more"),
        ({}, r"the device map is empty"),
    ],
)
def test_a_bad_device_map_fails_in_one_line(device_map, message) -> None:
    with pytest.raises(ModelLoadError, match=message) as caught:
        check_device_map(device_map)
    assert "\n" not in str(caught.value)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_a_gpu_this_machine_lacks_is_refused_before_loading(tmp_path: Path) -> None:
    for device_map in ({"": "cuda:0"}, {"": 1}):
        with pytest.raises(ModelLoadError, match="CUDA is not available"):
            load_model(str(tmp_path / "not-even-there"), device_map=device_map)
    check_device_map("auto")  # strategies are transformers' to place
    check_device_map({"": "cpu", "lm_head": "disk"})


def test_an_adapter_cannot_merge_into_offloaded_weights(tmp_path: Path) -> None:
    base_folder = save("llama", tmp_path / "base")
    base, _ = load_model(str(base_folder))
    device_map = split_map(base)
    with peft_wrapping():
        adapted = get_peft_model(base, LoraConfig(r=2, target_modules=["q_proj"]))
    adapted.save_pretrained(tmp_path / "adapter")
    config_file = tmp_path / "adapter" / "adapter_config.json"
    config = json.loads(config_file.read_text())
    config_file.write_text(json.dumps({**config, "base_model_name_or_path": str(base_folder)}))
    with pytest.raises(ModelLoadError, match=r"offloads .* merging the adapter edits them"):
        load_model(str(tmp_path / "adapter"), device_map=device_map)


@pytest.mark.slow
def test_the_embedded_model_half_offloaded_steers_as_whole() -> None:
    """SmolLM2 (tied embeddings, 30 blocks) with every other block and the embeddings on disk."""
    whole, tokenizer = load_model("default")
    blocks = whole.config.num_hidden_layers
    device_map = {"model.embed_tokens": "disk", "lm_head": "disk"}
    device_map |= {"model.norm": "cpu", "model.rotary_emb": "cpu"}
    device_map |= {f"model.layers.{i}": "disk" if i % 2 else "cpu" for i in range(blocks)}
    mapped, _ = load_model("default", device_map=device_map)
    assert offloaded_parameters(mapped)
    recorded = [sl.record(model, tokenizer, INPUTS, [5, 15, 25]) for model in (whole, mapped)]
    assert same(recorded[1], recorded[0])
    identity = sl.model_identity(whole)
    direction = recorded[0][15][1] - recorded[0][15][0]
    vector = SteeringVector({15: direction}, sl.VectorMetadata.for_model(identity, "test"))
    texts = [
        [g.text for g in sl.generate(model, tokenizer, PROMPTS[:1], vector, [0.0, 0.3],
                                     layers=[15], scale="norm", max_new_tokens=8)]
        for model in (whole, mapped)
    ]  # fmt: skip
    assert texts[1] == texts[0]
    assert hook_count(mapped) == 0


def test_the_serving_engine_batches_a_device_mapped_model(pair) -> None:
    whole, mapped, tokenizer, vector = pair
    coefficients = [-2.0, 0.0, 2.0]
    tokens: dict[int, list[int]] = {}
    done = threading.Event()

    def emit(event: tuple) -> None:
        if event[0] == "finish":
            tokens[event[1]] = event[3]
        elif event[0] != "delta":
            done.set()  # an error: the assertion below shows it
        if len(tokens) == len(coefficients):
            done.set()

    ticket = Ticket(emit)
    ids = tokenizer(format_chat(tokenizer, messages_for(PROMPTS[0])), add_special_tokens=False)
    steering = [RowSteering("v", c, (1, 2), "add", "all", "unit") for c in coefficients]
    rows = [
        Row(list(ids["input_ids"]), (s,), Sampling(6, 0.0, 1.0, 7, ()), i, ticket)
        for i, s in enumerate(steering)
    ]
    engine = BatchEngine(mapped, tokenizer, {"v": vector}, ServeConfig(batch_window_ms=200))
    try:
        engine.submit(rows)
        assert done.wait(60)
    finally:
        engine.close()
    expected = sl.generate(whole, tokenizer, PROMPTS[:1], vector, coefficients, layers=[1, 2],
                           scale="unit", max_new_tokens=6)  # fmt: skip
    texts = [tokenizer.decode(tokens[i], skip_special_tokens=True).strip() for i in range(3)]
    assert texts == [g.text for g in expected]
    assert hook_count(mapped) == 0


def test_fold_and_fold_adapter_refuse_offloaded_weights(pair, tmp_path: Path) -> None:
    """Folding edits weights in place; offloaded ones exist only inside a forward pass."""
    _, mapped, _, vector = pair
    with pytest.raises(SpecError, match="offloaded by the model's device map"):
        fold(mapped, vector, coefficient=1.0, layers=[1])
    with pytest.raises(SpecError, match="offloaded by the model's device map"):
        fold_adapter(mapped, vector, output_dir=tmp_path / "adapter", coefficient=1.0, layers=[1])
    assert not (tmp_path / "adapter").exists()
