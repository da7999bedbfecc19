"""``steerlab sweep``, ``eval`` and ``matrix``: measure what steering and tuning do.

All three spread their units of work over the processes of ``accelerate launch`` or
``torchrun`` (:mod:`steerlab.distributed`): each process loads the model on its own device
(``cuda:LOCAL_RANK`` on a GPU machine, else the CPU, unless ``--device`` / ``--device-map``
says otherwise), and only the main process prints.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from steerlab import distributed
from steerlab.cli.common import (
    DeviceMapOpt,
    DeviceOpt,
    DtypeOpt,
    JudgeKeyEnvOpt,
    JudgeModelOpt,
    JudgeUrlOpt,
    ModelOpt,
    NormalizeOpt,
    ScaleByNormOpt,
    ScaleOpt,
    check_count,
    check_number,
    check_output,
    check_vector_fits,
    console,
    friendly_errors,
    parse_coefficients,
    parse_device_map,
    print_note,
    steering_scale,
)
from steerlab.errors import SpecError


def processes_device_map(device_map: str | None) -> Any:
    """``--device-map`` parsed, refused when several processes share this machine.

    Each process would spread its copy of the model over the same devices; one process per
    machine (a model too big for one GPU, several machines) is what a device map is for.
    Checked before any process waits for another, so every process fails alike.
    """
    chosen = parse_device_map(device_map)
    processes = distributed.local_world_size()
    if chosen is not None and processes > 1:
        raise SpecError(
            f"--device-map with {processes} processes on this machine: each would spread its "
            "model over the same devices; start one process per machine, or drop --device-map "
            "(each process then loads the model on its own GPU)"
        )
    return chosen


@friendly_errors
def sweep(
    vector: Annotated[Path, typer.Option("--vector", "-v", help="Steering vector file.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output folder (resumable).")],
    model: ModelOpt = "default",
    behavior: Annotated[
        list[str] | None,
        typer.Option(
            "--behavior",
            "-b",
            help="[NAME=]KIND:PATH, KIND caa/ab (A/B likelihood), pairs (reply likelihood of "
            "contrastive pairs) or advbench/harmful (sampled, refusal-scored); PATH may be "
            "builtin:honesty_ab or builtin:happy_sad. Repeatable.",
        ),
    ] = None,
    helpfulness: Annotated[
        list[str] | None,
        typer.Option("--helpfulness", help="[NAME=]mmlu:PATH (or builtin:general_mc). Repeatable."),
    ] = None,
    perplexity: Annotated[
        Path | None, typer.Option(help="Text file (a text a line) or JSONL with 'text'.")
    ] = None,
    coefficients: Annotated[
        str, typer.Option(help="Comma list (-4,0,4) or start:stop:count (-8:8:17).")
    ] = "-8:8:17",
    layers: Annotated[str, typer.Option(help="Layers to steer.")] = "all",
    operator: Annotated[str, typer.Option(help="add, ablate or clamp.")] = "add",
    scale: ScaleOpt = None,
    normalize: NormalizeOpt = None,
    scale_by_norm: ScaleByNormOpt = None,
    aligned: Annotated[
        str, typer.Option(help="Which A/B answer is aligned: matching or not_matching.")
    ] = "matching",
    limit: Annotated[int | None, typer.Option(help="Items per task.")] = None,
    samples: Annotated[
        int, typer.Option(help="Samples per prompt for sampled behaviour / answers.")
    ] = 4,
    judge_url: JudgeUrlOpt = None,
    judge_model: JudgeModelOpt = None,
    judge_key_env: JudgeKeyEnvOpt = "OPENAI_API_KEY",
    judge_rubric: Annotated[
        str | None, typer.Option(help="What the judge looks for (the aligned behaviour).")
    ] = None,
    answer_scoring: Annotated[
        str, typer.Option(help="Multiple choice by answer 'letter' (the study's) or 'text'.")
    ] = "letter",
    temperature: Annotated[float, typer.Option(help="Sampling temperature.")] = 1.0,
    batch_size: Annotated[int, typer.Option(help="Rows per forward pass.")] = 16,
    coefficients_per_batch: Annotated[
        int, typer.Option(help="Coefficients per unit of work (and of resumption).")
    ] = 3,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    estimates: Annotated[bool, typer.Option(help="Also estimate Δλ and λσβ empirically.")] = True,
    dtype: DtypeOpt = None,
    device: DeviceOpt = None,
    device_map: DeviceMapOpt = None,
) -> None:
    """Sweep the steering coefficient: behaviour, helpfulness, fits and plots."""
    from steerlab.evaluate import Task, behavior_task, helpfulness_task, perplexity_task
    from steerlab.evaluate import sweep as run_sweep
    from steerlab.models import check_model_reference, load_model
    from steerlab.steer import SteerSpec
    from steerlab.vector import SteeringVector

    values = parse_coefficients(coefficients)
    # The study's convention is the unit direction times r_e: the default, said in the output.
    chosen_scale = steering_scale("sweep", scale, normalize, scale_by_norm, default="unit")
    steer_spec = SteerSpec(operator=operator, scale=chosen_scale)  # type: ignore[arg-type]  # checked before loading
    if aligned not in ("matching", "not_matching"):
        raise SpecError(f"--aligned {aligned!r} is not matching or not_matching")
    check_count(limit, "--limit")
    check_count(samples, "--samples")
    check_count(batch_size, "--batch-size")
    check_count(coefficients_per_batch, "--coefficients-per-batch")
    check_number(temperature, "--temperature")
    check_output(output, folder=True)
    chosen_map = processes_device_map(device_map)
    device = device or distributed.default_device()  # one device per process
    check_model_reference(model)  # before the judge loads
    scorer = make_judge(judge_url, judge_model, judge_key_env, judge_rubric, dtype, device)
    tasks: list[Task] = [
        behavior_task(
            spec,
            limit=limit,
            aligned=aligned,
            n_samples=samples,
            temperature=temperature,
            scorer=scorer,
        )
        for spec in behavior or []
    ]
    tasks += [
        helpfulness_task(spec, limit=limit, scoring=answer_scoring) for spec in helpfulness or []
    ]
    if perplexity is not None:
        tasks.append(perplexity_task(str(perplexity), limit=limit))
    if not tasks:
        raise SpecError("nothing to measure: give --behavior, --helpfulness or --perplexity")
    steering = SteeringVector.load(vector)
    loaded, tokenizer = load_model(model, dtype=dtype, device=device, device_map=chosen_map)
    check_vector_fits(steering, vector, loaded)
    result = run_sweep(
        loaded,
        tokenizer,
        steering,
        values,
        tasks,
        layers=layers,
        operator=steer_spec.operator,
        scale=chosen_scale,  # type: ignore[arg-type]
        output_dir=output,
        batch_size=batch_size,
        coefficients_per_batch=coefficients_per_batch,
        seed=seed,
        estimates=estimates,
        progress=distributed.is_main_process(),
    )
    if not distributed.is_main_process():
        return
    console.print(result.table())
    print_note(
        f"coefficients are r in scale '{chosen_scale}'"
        + (
            " (the study's convention: the unit direction times r_e)"
            if chosen_scale == "unit"
            else ""
        )
    )
    console.print(result.summary(), highlight=False)  # what was swept, then the fits
    console.print(f"wrote {output}/results.jsonl, fit.json and plots")


def make_judge(
    url: str | None,
    model: str | None,
    key_env: str,
    rubric: str | None,
    dtype: str | None,
    device: str | None,
) -> Any:
    """An LLM-judge scorer from the CLI options, or None for the task's default scorer."""
    from steerlab.evaluate import LLMJudgeScorer, LocalJudge, OpenAIJudge
    from steerlab.evaluate.scorers import DEFAULT_RUBRIC

    if url is None and model is None:
        return None
    if model is None:
        raise SpecError("--judge-url needs --judge-model (the model name at that endpoint)")
    if url is not None:
        backend: Any = OpenAIJudge(url, model, api_key_env=key_env)
    else:
        from steerlab.models import load_model

        judge_model, judge_tokenizer = load_model(model, dtype=dtype, device=device)
        backend = LocalJudge(judge_model, judge_tokenizer)
    return LLMJudgeScorer(backend, rubric=rubric or DEFAULT_RUBRIC)


@friendly_errors
def matrix(
    vectors: Annotated[
        str, typer.Option("--vectors", help="Comma-separated vector files (NAME=PATH allowed).")
    ],
    prompts: Annotated[Path, typer.Option(help="Questions (text lines, JSONL or chat JSON).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output folder (resumable).")],
    model: ModelOpt = "default",
    normalized_coefficients: Annotated[
        str, typer.Option(help="Fractions of the activation norm (unit direction).")
    ] = "0.05,0.1,0.2,0.4,0.8",
    raw_coefficients: Annotated[str, typer.Option(help="Multiples of the raw vector.")] = (
        "0.5,1,2,4,8"
    ),
    single_layer: Annotated[
        int | None, typer.Option(help="Layer of the single-layer conditions (default: middle).")
    ] = None,
    no_ablate: Annotated[bool, typer.Option("--no-ablate", help="Skip ablation.")] = False,
    max_new_tokens: Annotated[int, typer.Option(help="Tokens per output.")] = 32,
    limit: Annotated[int | None, typer.Option(help="Use only the first N prompts.")] = None,
    batch_size: Annotated[int, typer.Option(help="Rows per generate.")] = 32,
    judge_url: JudgeUrlOpt = None,
    judge_model: JudgeModelOpt = None,
    judge_key_env: JudgeKeyEnvOpt = "OPENAI_API_KEY",
    dtype: DtypeOpt = None,
    device: DeviceOpt = None,
    device_map: DeviceMapOpt = None,
) -> None:
    """Steering matrix: vectors x add/subtract/ablate x normalised/raw x layer modes x grid."""
    from steerlab.data.qa import read_questions
    from steerlab.evaluate import MatrixSettings, steering_matrix
    from steerlab.evaluate.matrix import DECEPTION_RUBRIC
    from steerlab.models import check_model_reference, load_model
    from steerlab.vector import SteeringVector

    check_count(max_new_tokens, "--max-new-tokens")
    check_count(batch_size, "--batch-size")
    check_count(limit, "--limit")
    check_output(output, folder=True)
    chosen_map = processes_device_map(device_map)
    device = device or distributed.default_device()  # one device per process
    settings = MatrixSettings(
        normalized_coefficients=tuple(parse_coefficients(normalized_coefficients)),
        raw_coefficients=tuple(parse_coefficients(raw_coefficients)),
        single_layer=single_layer,
        ablate=not no_ablate,
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
    )
    loaded_vectors = {}
    files = {}
    for item in (v.strip() for v in vectors.split(",") if v.strip()):
        name, _, path = item.rpartition("=")
        file = Path(path)
        loaded_vectors[name or file.stem] = SteeringVector.load(file)
        files[name or file.stem] = file
    questions = read_questions(prompts)[:limit]
    check_model_reference(model)  # before the judge loads
    scorer = make_judge(judge_url, judge_model, judge_key_env, DECEPTION_RUBRIC, dtype, device)
    loaded, tokenizer = load_model(model, dtype=dtype, device=device, device_map=chosen_map)
    for name, steering in loaded_vectors.items():
        check_vector_fits(steering, files[name], loaded)
    result = steering_matrix(
        loaded,
        tokenizer,
        loaded_vectors,
        questions,
        settings,
        scorer=scorer,
        output_dir=output,
        progress=distributed.is_main_process(),
    )
    if not distributed.is_main_process():
        return
    console.print(result.table())
    console.print(result.summary(), highlight=False)
    console.print(f"wrote {output}/results.jsonl, summary.csv, examples.md/.html, rates.png/.svg")


@friendly_errors
def eval_models(
    models: Annotated[
        str,
        typer.Option(
            help="Comma list of models: default, run folders, Hub ids; LABEL=MODEL to name one."
        ),
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for results.")],
    steered: Annotated[
        list[str] | None,
        typer.Option(
            help="Online steering row MODEL:VECTOR:COEF (repeatable), e.g. "
            "default:honesty.safetensors:4."
        ),
    ] = None,
    suite: Annotated[str, typer.Option(help="Evaluation suite (honesty).")] = "honesty",
    vector: Annotated[
        Path | None,
        typer.Option(help="Target vector for the cosine metric (default: the steered one)."),
    ] = None,
    layers: Annotated[
        str | None,
        typer.Option(
            help="Layers for the cosine metric and steering (default: the tuned run's "
            "layers, else the vector's)."
        ),
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            help="Folder laid out like shared/data (facts/, truthfulqa/); default "
            "$STEERLAB_DATA or ../shared/data when present."
        ),
    ] = None,
    facts: Annotated[
        list[str] | None, typer.Option(help="True/false statement file (repeatable).")
    ] = None,
    split: Annotated[
        str,
        typer.Option(
            help="Statements scored per facts file: heldout (the part tune never trains "
            "on), all, or auto: heldout for a file an evaluated run was tuned on, else all."
        ),
    ] = "auto",
    truthfulqa: Annotated[
        str | None, typer.Option(help="TruthfulQA MC JSON (mc1/mc2 targets).")
    ] = None,
    ab: Annotated[
        list[str] | None,
        typer.Option(help="A/B file whose matching answer is the honest one (repeatable)."),
    ] = None,
    text: Annotated[
        str | None, typer.Option(help="Texts for perplexity (lines, or JSONL with 'text').")
    ] = None,
    limit: Annotated[int, typer.Option(help="Items per dataset at most.")] = 200,
    bootstrap: Annotated[int, typer.Option(help="Bootstrap resamples for the CIs.")] = 1000,
    seed: Annotated[int, typer.Option(help="Random seed of the bootstrap.")] = 0,
    batch_size: Annotated[int, typer.Option(help="Rows per forward pass.")] = 16,
    resume: Annotated[bool, typer.Option(help="Skip models already evaluated in OUTPUT.")] = True,
    device: DeviceOpt = None,
    device_map: DeviceMapOpt = None,
) -> None:
    """Compare models (and online steering) on the honesty suite, with 95% bootstrap CIs."""
    from steerlab.evaluate import (
        SPLITS,
        HonestySuite,
        evaluate_models,
        find_data_dir,
        parse_models,
    )
    from steerlab.vector import SteeringVector

    if suite != "honesty":
        raise SpecError(f"--suite {suite!r} is unknown; available: honesty")
    if split not in SPLITS:
        raise SpecError(f"--split {split!r} is not one of {', '.join(SPLITS)}")
    check_count(limit, "--limit")
    check_count(bootstrap, "--bootstrap")
    check_count(batch_size, "--batch-size")
    check_output(output, folder=True)
    chosen_map = processes_device_map(device_map)
    main = distributed.is_main_process()
    entries = parse_models(models, steered or [])
    target = SteeringVector.load(vector) if vector is not None else None
    target_path = str(vector) if vector is not None else None
    if target is None:
        first = next((e for e in entries if e.vector is not None), None)
        if first is not None:
            target, target_path = first.vector, first.vector_path
    chosen = eval_layers(layers, target, models)
    settings: dict[str, Any] = {
        "vector": target,
        "vector_path": target_path,
        "layers": chosen,
        "limit": limit,
        "bootstrap": bootstrap,
        "seed": seed,
        "batch_size": batch_size,
        "split": split,
    }
    if ab:
        settings["ab"] = tuple(ab)
    if text is not None:
        settings["text"] = text
    if truthfulqa is not None:
        settings["truthfulqa"] = truthfulqa
    if facts:
        settings["facts"] = tuple(facts)
    found = find_data_dir(str(data_dir) if data_dir is not None else None)
    if found is not None:
        config = HonestySuite.from_data_dir(found, **settings)
        if main:
            console.print(f"evaluation data: {found}", highlight=False)
    else:
        config = HonestySuite(**settings)
    if config.truthfulqa is None and main:
        console.print("TruthfulQA: skipped (no --truthfulqa file or data folder)")
    if target is None and main:
        console.print("cosine to the target vector: skipped (no --vector or --steered)")
    result = evaluate_models(
        entries,
        output,
        config,
        progress=main,
        resume=resume,
        device=device,  # None: each process's own (steerlab.distributed.default_device)
        device_map=chosen_map,
    )
    if not main:
        return
    console.print(result.table())
    for line in result.data_summary():
        console.print(line, highlight=False)
    console.print(f"results: {output}/results.jsonl, table.csv, table.md, bars.png/.svg")


def eval_layers(layers: str | None, target: Any, models: str) -> tuple[int, ...] | None:
    """``eval --layers`` as given ("all": the vector's), else the first tuned run's, else None.

    Args:
        layers: the option's text, or None when not given.
        target: the target vector (a :class:`~steerlab.vector.SteeringVector`), or None.
        models: the ``--models`` text; its run folders are searched for tuned layers.
    """
    from steerlab.layers import parse_layers
    from steerlab.tuning import read_run

    if layers is None:
        for entry in (part.strip() for part in models.split(",") if part.strip()):
            run = read_run(entry.split("=", 1)[-1])
            if run is not None and run.representation_layers:
                return run.representation_layers
        return None
    if layers.strip().lower() == "all":
        if target is None:
            raise SpecError("--layers all needs a --vector to know the layers")
        return tuple(target.layers)
    if target is not None:
        # The vector knows its model's layer count: -1 is the last layer, as elsewhere.
        return parse_layers(layers, target.metadata.num_layers)
    # No vector and no model yet: the suite checks the range against the models later.
    if any(part.strip().startswith("-") for part in layers.split(",")):
        raise SpecError(f"--layers {layers!r}: negative layers need a --vector or --steered")
    return parse_layers(layers, 1 << 20)
