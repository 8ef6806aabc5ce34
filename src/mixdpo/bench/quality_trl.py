"""The ``trl-dpo`` baseline of ``mixdpo bench quality``: TRL's ``DPOTrainer`` (the ``bench`` extra) on the
same pairs with the same LoRA adapters, budget and beta as mixdpo's plain DPO, evaluated per hidden group
on the held-out pairs, and generating from the same held-out prompts with the same sampling."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import torch

from mixdpo.bench.quality import EVAL_KEYS, generation_prompts, read_rows, score_generations
from mixdpo.bench.quality_cases import QualityCase, QualitySettings
from mixdpo.experts.lora import linear_module_names


def pair_outcomes_of(trainer: Any, pairs: list[dict]) -> str:
    """Each held-out pair's outcome under TRL's own metric ("1" when ``rewards/accuracies`` is 1, i.e. the
    chosen response's implicit reward beats the rejected one's), one ``evaluate`` call per pair.

    TRL reports only means over an evaluation; a batch of one pair makes its mean that pair's outcome (and
    needs no padding). The order is ``pairs``' order: the held-out file's, as mixdpo's rows keep it."""
    import datasets
    from datasets import Dataset
    from transformers import PrinterCallback

    trainer.args.per_device_eval_batch_size = 1
    was_disabled = datasets.are_progress_bars_disabled()
    datasets.disable_progress_bars()  # one tokenisation per pair: no bar for each
    printer = trainer.pop_callback(PrinterCallback)  # nor a printed metrics line for each
    try:
        accuracies = [
            float(trainer.evaluate(eval_dataset=Dataset.from_list([pair]))["eval_rewards/accuracies"])
            for pair in pairs
        ]
    finally:
        if not was_disabled:
            datasets.enable_progress_bars()
        if printer is not None:
            trainer.add_callback(printer)
    return "".join("1" if a > 0.5 else "0" for a in accuracies)


def lora_config(options: dict[str, Any], model) -> Any:
    """The PEFT LoraConfig of mixdpo's lora backend for these case options (rank, top layers)."""
    from peft import LoraConfig

    top = options.get("lora_top_layers")
    num_layers = model.config.num_hidden_layers
    return LoraConfig(
        r=options["lora_r"],
        lora_alpha=16,  # MixDPOConfig's lora_alpha default, which the quality cases keep
        lora_dropout=0.0,
        # PEFT refuses "all-linear" together with layers_to_transform: name the layers, as the backend does
        target_modules=linear_module_names(model) if top else "all-linear",
        layers_to_transform=list(range(num_layers - top, num_layers)) if top else None,
        task_type="CAUSAL_LM",
    )


def _generate(model, tokenizer, prompts: list[str], settings: QualitySettings, seed: int) -> list[str]:
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    try:
        enc = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    finally:
        tokenizer.padding_side = side
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        out = model.generate(**enc, max_new_tokens=settings.max_new_tokens, do_sample=True, temperature=1.0,
                             top_k=0, top_p=0.95, pad_token_id=tokenizer.pad_token_id)  # fmt: skip
    return tokenizer.batch_decode(out[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)


def run_trl_dpo(
    case: QualityCase,
    settings: QualitySettings,
    options: dict[str, Any],
    files: dict[str, Path],
    work_dir: Path,
) -> dict[str, Any]:
    """Train TRL's ``DPOTrainer`` on ``files["train"]``; returns the benchmark row (per-group held-out
    accuracy = TRL's ``rewards/accuracies`` on each group's pairs; generation from the adapter and, for
    the reference, from the base with the adapter disabled)."""
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    from mixdpo.models import load_model_and_tokenizer

    def text_rows(path: Path) -> list[dict]:
        return [
            {k: r[k] for k in ("prompt", "chosen", "rejected")} | {"group": r["group"]}
            for r in read_rows(path)
        ]

    train, held_out = text_rows(files["train"]), text_rows(files["eval"])
    loaded = load_model_and_tokenizer(case.model, seed=0)  # mixdpo's model_seed default
    config = DPOConfig(
        output_dir=str(work_dir / "trl"),
        per_device_train_batch_size=options["per_device_train_batch_size"],
        max_steps=options["max_steps"],
        learning_rate=options["learning_rate"],
        beta=options["beta"],
        max_length=options["max_length"],
        logging_steps=options["logging_steps"],
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        seed=case.seed,
        use_cpu=not torch.cuda.is_available(),
        bf16=False,
        dataloader_pin_memory=False,
    )
    trainer = DPOTrainer(
        model=loaded.model,
        args=config,
        train_dataset=Dataset.from_list([{k: r[k] for k in ("prompt", "chosen", "rejected")} for r in train]),
        processing_class=loaded.tokenizer,
        peft_config=lora_config(options, loaded.model),
    )
    trainer.train()
    outcomes = pair_outcomes_of(
        trainer, [{k: r[k] for k in ("prompt", "chosen", "rejected")} for r in held_out]
    )
    by_group: dict[str, list[int]] = defaultdict(list)
    for r, outcome in zip(held_out, outcomes, strict=True):
        by_group[r["group"]].append(int(outcome))
    evaluation = {
        "mixture_accuracy": outcomes.count("1") / len(outcomes),
        "per_group_accuracy": {g: sum(v) / len(v) for g, v in sorted(by_group.items())},
        "num_pairs": len(outcomes),
        "per_group_pairs": {g: len(v) for g, v in sorted(by_group.items())},
        "pair_correct": outcomes,
    }
    row: dict[str, Any] = {
        "case": case.to_dict(),
        "num_experts": 1,
        "gate": "global",
        "backend": "lora (TRL)",
        "learning_rate": options["learning_rate"],
        "pairs": {
            "train": {"read": len(train), "left_out": 0},
            "eval": {"read": len(held_out), "left_out": 0},
        },
        "eval": {key: evaluation.get(key) for key in EVAL_KEYS},
        "generation": None,
    }
    if settings.generation_prompts:
        prompts = generation_prompts(case.task, read_rows(files["eval"]), settings)
        texts = [r["prompt"] for r in prompts]
        model = trainer.model.eval()
        with torch.no_grad():
            tuned = _generate(model, loaded.tokenizer, texts, settings, case.seed)
            with model.disable_adapter():
                reference = _generate(model, loaded.tokenizer, texts, settings, case.seed)
        row |= score_generations(case.task, prompts, {"reference": reference, "expert:0": tuned,
                                                      "mixture": tuned})  # fmt: skip
    return row
