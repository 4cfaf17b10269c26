"""LLM precision on this CPU: float32 vs bfloat16 vs int8 (dynamic, Linear layers), transformers.

Quality: perplexity of the model on a fixed English text (bench/quant_text.txt, ~1k tokens),
lower is better, and how much of each greedy answer matches float32's before they differ.
Speed: output tokens/s of the engine's own batched decode loop (the path the text deployment
runs), on a batch of prompts, greedy, one thread per replica as deployed here; best of a few
rounds that take turns between the variants, since other processes share the cores.

    python -m bench.quant_llm [--batch 8] [--max-tokens 64] [--threads 1] [--rounds 3]
"""

from __future__ import annotations

import argparse
import math
import time
from functools import partial
from pathlib import Path

import torch

from bench.quant_common import best_interleaved, uptime, write_results
from deployments.core.generation import SamplingParams
from deployments.core.models import default_model_dir, resolve
from deployments.engines.transformers_text import TransformersTextEngine

TEXT = Path(__file__).resolve().parent / "quant_text.txt"
VARIANTS = [("float32", "float32", None), ("bfloat16", "bfloat16", None),
            ("int8", "float32", "int8")]
QUESTIONS = ["What is the capital of France?", "Explain photosynthesis briefly.",
             "Write a haiku about the sea.", "List three prime numbers.",
             "Why is the sky blue?", "Give me a tip for learning to code.",
             "What does a compiler do?", "Describe a cat in one sentence."]


def perplexity(engine: TransformersTextEngine, text: str, window: int = 512) -> float:
    """exp(mean next-token NLL) over consecutive windows of the tokenized text."""
    ids = engine.tokenizer(text, return_tensors="pt")["input_ids"][0]
    total_nll, count = 0.0, 0
    with torch.inference_mode():
        for start in range(0, len(ids) - 1, window):
            chunk = ids[start:start + window + 1].unsqueeze(0)
            logits = engine.model(input_ids=chunk[:, :-1]).logits.float()
            nll = torch.nn.functional.cross_entropy(logits[0], chunk[0, 1:], reduction="sum")
            total_nll, count = total_nll + float(nll), count + chunk.shape[1] - 1
    return math.exp(total_nll / count)


def chat_prompts(engine: TransformersTextEngine, batch: int) -> list[list[int]]:
    return [engine.encode_chat([{"role": "user", "content": QUESTIONS[i % len(QUESTIONS)]}])
            for i in range(batch)]


def greedy_answers(engine: TransformersTextEngine, prompts: list, max_tokens: int) -> list:
    params = [SamplingParams(max_tokens=max_tokens, temperature=0.0)] * len(prompts)
    return [engine.tokenizer(c.text, add_special_tokens=False)["input_ids"]
            for c in engine.generate_batch(prompts, params)]


def decode_rate(engine: TransformersTextEngine, prompts: list, max_tokens: int) -> float:
    """Output tokens/s of one greedy batch."""
    params = [SamplingParams(max_tokens=max_tokens, temperature=0.0)] * len(prompts)
    started = time.perf_counter()
    completions = engine.generate_batch(prompts, params)
    return sum(c.completion_tokens for c in completions) / (time.perf_counter() - started)


def shared_prefix(answers: list[list[int]], reference: list[list[int]]) -> float:
    """Mean share of each greedy answer that matches float32's before the first difference."""
    shares = []
    for mine, ref in zip(answers, reference):
        same = next((i for i, (a, b) in enumerate(zip(mine, ref)) if a != b),
                    min(len(mine), len(ref)))
        shares.append(same / max(len(mine), len(ref), 1))
    return sum(shares) / len(shares)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.quant_llm")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3, help="speed: best of, interleaved")
    opts = parser.parse_args(argv)
    load = uptime()
    model = str(resolve("smollm2-135m-instruct", default_model_dir()))
    text = TEXT.read_text()
    engines = {name: TransformersTextEngine(model, dtype, opts.threads, quantization)
               for name, dtype, quantization in VARIANTS}
    prompts = chat_prompts(engines["float32"], opts.batch)
    answers = {name: greedy_answers(e, prompts, opts.max_tokens) for name, e in engines.items()}
    speed = best_interleaved({name: partial(decode_rate, e, prompts, opts.max_tokens)
                              for name, e in engines.items()}, opts.rounds)
    rows = [{"variant": name, "config": f"dtype={dtype} quantization={quantization}",
             "perplexity": perplexity(engines[name], text),
             "greedy prefix = float32": shared_prefix(answers[name], answers["float32"]),
             "output tokens/s": speed[name], "speed vs float32": speed[name] / speed["float32"]}
            for name, dtype, quantization in VARIANTS]
    write_results(
        "quant_llm", f"LLM precision, transformers engine (SmolLM2-135M-Instruct, batch "
        f"{opts.batch}, {opts.max_tokens} new tokens, {opts.threads} thread)",
        ["variant", "config", "perplexity", "greedy prefix = float32", "output tokens/s",
         "speed vs float32"], rows,
        ["Perplexity on bench/quant_text.txt (lower is better). The model was shipped as a "
         "Q4_1 GGUF and converted to float32 at set-up, so float32 is the reference. int8 "
         "keeps the MLP down-projection and the LM head in float32 (see quantize.py). Speed: "
         f"best of {opts.rounds} interleaved rounds."], load)


if __name__ == "__main__":
    main()
