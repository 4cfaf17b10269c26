"""Text generation with Hugging Face transformers and an explicit KV-cache decode loop.

`model.generate` applies one sampling configuration to a whole batch. Serving batches requests
from different users, so this loop samples each row with its own temperature, top_p and seeded
RNG, and stops each row on its own `max_tokens`, stop strings or end-of-sequence token.
A streamed row is a row like the others, whose text is handed to its caller after each step
as it becomes final (RowControl.on_text).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

from deployments.engines.chat import chat_token_ids
from deployments.engines.quantize import check_quantization, quantize_linear_int8
from deployments.engines.sampling import make_generator, sample_row
from serve_app.core.errors import DeadlineExceeded, ServeError
from serve_app.core.generation import Completion, RowControl, SamplingParams
from serve_app.core.models import resolve

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
# Left float32 by int8 quantization (Llama-family names): the MLP down-projection, whose input
# has outliers (perplexity 19.7 -> 46 when quantized), and the head tied to the embeddings.
KEEP_FLOAT_FOR_INT8 = ("down_proj", "lm_head")


@dataclass
class _Row:
    """Decode state of one request inside a batch."""

    prompt_len: int
    params: SamplingParams
    generator: torch.Generator
    control: RowControl
    tokens: list[int] = field(default_factory=list)
    text: str = ""
    finish_reason: str | None = None  # "stop" | "length" | "abort" | "deadline"
    emitted: int = 0  # characters of `text` already streamed

    def __post_init__(self) -> None:
        # A row run again alone (its batch failed whole) streams only what its caller lacks.
        self.emitted = self.control.streamed_chars

    def obey_control(self) -> None:
        """Ends the row once its caller has gone away or its deadline has passed."""
        if not self.finish_reason:
            self.finish_reason = self.control.stop_reason()

    def final_text(self) -> str:
        """The text not streamed yet that can no longer change: all of it once the row has
        finished; else short of a stop string's length (it may still be cut there) and of a
        partial UTF-8 character."""
        safe = len(self.text)
        if not self.finish_reason:
            safe -= max((len(s) for s in self.params.stop if s), default=1) - 1
        while safe > self.emitted and self.text[safe - 1] == "\ufffd":
            safe -= 1
        piece = self.text[self.emitted:max(safe, self.emitted)]
        self.emitted += len(piece)
        return piece

    def stream_step(self) -> None:
        """Hands a streamed row's newly final text to its caller."""
        if self.control.on_text is not None:
            piece = self.final_text()
            if piece:
                self.control.on_text(piece)
                self.control.streamed_chars = self.emitted


class TransformersTextEngine:
    batches_itself = False  # the deployment batches it (deployments/batcher.py)

    def __init__(self, model_path: str, dtype: str = "float32", threads: int = 1,
                 quantization: str | None = None) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if dtype not in _DTYPES:
            raise ValueError(f"dtype must be one of {sorted(_DTYPES)}, got {dtype!r}")
        check_quantization(quantization, dtype)
        torch.set_num_threads(threads)
        self.tokenizer = AutoTokenizer.from_pretrained(model_path)
        self.model = AutoModelForCausalLM.from_pretrained(model_path, dtype=_DTYPES[dtype]).eval()
        if quantization == "int8":
            self.model = quantize_linear_int8(self.model, KEEP_FLOAT_FOR_INT8)
        self.pad_id = self.tokenizer.pad_token_id or 0
        self.eos_ids = self._eos_ids()

    @classmethod
    def from_config(cls, config: Any, model_dir: str) -> TransformersTextEngine:
        return cls(str(resolve(config.model, model_dir)), config.dtype, config.threads,
                   config.quantization)

    def _eos_ids(self) -> set[int]:
        ids = self.model.generation_config.eos_token_id
        ids = set(ids if isinstance(ids, list) else [ids] if ids is not None else [])
        if self.tokenizer.eos_token_id is not None:
            ids.add(self.tokenizer.eos_token_id)
        return ids

    def encode_chat(self, messages: list[dict]) -> list[int]:
        return chat_token_ids(self.tokenizer, messages)

    def generate_batch(
        self, prompts: list[list[int]], params: list[SamplingParams],
        controls: list[RowControl] | None = None,
    ) -> list[Completion | Exception]:
        """Per row, its Completion or its own error: a bad seed fails before the batched
        forward, a deadline passing mid-decode fails at the next step (DeadlineExceeded), and
        a cancelled row ends with "abort" there while the others go on. A row whose control
        has `on_text` gets its text streamed after each decode step."""
        controls = controls or [RowControl() for _ in prompts]
        outcomes: list[Completion | Exception | None] = [None] * len(prompts)
        rows: dict[int, _Row] = {}
        for i, (prompt, sampling, control) in enumerate(
                zip(prompts, params, controls, strict=True)):
            try:
                rows[i] = _Row(len(prompt), sampling, make_generator(sampling), control)
            except ServeError as error:
                outcomes[i] = error
                continue
            rows[i].obey_control()  # gone or late already: not worth a place in the batch
        running = [i for i, row in rows.items() if not row.finish_reason]
        if running:
            for _ in self._decode_steps([prompts[i] for i in running], [rows[i] for i in running]):
                for i in running:
                    rows[i].stream_step()
        for i, row in rows.items():
            outcomes[i] = self._outcome(row)
        return outcomes

    def _outcome(self, row: _Row) -> Completion | Exception:
        if row.finish_reason == "deadline":
            return DeadlineExceeded("the completion")
        return self._completion(row)

    def _completion(self, row: _Row) -> Completion:
        return Completion(row.text, row.prompt_len, len(row.tokens), row.finish_reason or "length")

    def _decode_steps(self, prompts: list[list[int]], rows: list[_Row]) -> Iterator[None]:
        """Runs the decode loop over `rows`, updating them; yields after each step. It ends
        when every row has finished: stopped, at its length, cancelled or past its deadline."""
        from transformers import DynamicCache

        input_ids, mask = self._left_pad(prompts)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        cache = DynamicCache()
        with torch.inference_mode():
            logits = self._forward(input_ids, mask, positions, cache)
            for _ in range(max(row.params.max_tokens for row in rows)):
                next_ids = self._step(rows, logits)
                for row in rows:
                    row.obey_control()
                yield
                if all(row.finish_reason for row in rows):
                    break
                mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
                positions = positions[:, -1:] + 1
                logits = self._forward(next_ids, mask, positions, cache)

    def _forward(self, ids, mask, positions, cache) -> torch.Tensor:
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=positions,
                         past_key_values=cache, use_cache=True)
        return out.logits[:, -1, :]

    def _left_pad(self, prompts: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        width = max(len(p) for p in prompts)
        ids = torch.full((len(prompts), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for i, prompt in enumerate(prompts):
            ids[i, width - len(prompt):] = torch.tensor(prompt, dtype=torch.long)
            mask[i, width - len(prompt):] = 1
        return ids, mask

    def _step(self, rows: list[_Row], logits: torch.Tensor) -> torch.Tensor:
        next_ids = []
        for i, row in enumerate(rows):
            if row.finish_reason:
                next_ids.append(self.pad_id)
                continue
            token = sample_row(logits[i], row.params, row.generator)
            next_ids.append(token)
            self._append(row, token)
        return torch.tensor(next_ids, dtype=torch.long).unsqueeze(1)

    def _append(self, row: _Row, token: int) -> None:
        if token in self.eos_ids:
            row.finish_reason = "stop"
            return
        row.tokens.append(token)
        row.text = self.tokenizer.decode(row.tokens, skip_special_tokens=True)
        cut = _first_stop(row.text, row.params.stop)
        if cut is not None:
            row.text = row.text[:cut]
            row.finish_reason = "stop"
        elif len(row.tokens) >= row.params.max_tokens:
            row.finish_reason = "length"


def _first_stop(text: str, stops: tuple[str, ...]) -> int | None:
    hits = [text.find(s) for s in stops if s and s in text]
    return min(hits) if hits else None
