"""Batched generation for evaluation: left padding, length-sorted batches, greedy unless asked otherwise.

Batching is what makes evaluation affordable (one `generate` call per batch instead of per item), and it is
only safe because of three details here: prompts are padded on the left so every row's next token sits at the
same position, the attention mask hides the padding, and batches are made of prompts of similar length so
little compute goes to padding. Outputs are decoded as whole sequences (never token by token), so a Hangul
syllable split across byte-level tokens is never cut in half.

Stop strings are checked by decoding a short tail of each row per step (`_StopStrings`): transformers' own
`StopStringCriteria` precomputes tables over the whole vocabulary on every call, which costs seconds per batch
with a 150k-token vocabulary.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

from malmungchi.eval.normalize import ALWAYS_END_MARKERS

STOP_EOS, STOP_STRING, STOP_LENGTH = "eos", "stop", "length"
STOP_ERROR = "error"  # a served backend's server rejected the item: no answer, the message in `error`


@dataclass(frozen=True)
class GenerationSettings:
    max_new_tokens: int = 64
    temperature: float = 0.0  # 0: greedy
    top_p: float = 1.0
    seed: int = 0
    stop_strings: tuple[str, ...] = ()

    @property
    def sampling(self) -> bool:
        return self.temperature > 0

    def identity(self) -> dict:
        """What changes the outputs (for the fingerprint): the seed only matters when sampling."""
        out = asdict(self)
        out["stop_strings"] = sorted(self.stop_strings)
        if not self.sampling:
            out.pop("seed")
            out.pop("top_p")
        return out


@dataclass(frozen=True)
class Generation:
    text: str
    stop_reason: str  # eos | stop | length | error
    new_tokens: int
    error: str | None = None  # with STOP_ERROR: why the server gave no answer (then `text` is not an answer)


def ensure_pad_token(tokenizer) -> None:
    """Left padding needs a pad id; a tokenizer without one pads with EOS (the attention mask hides it)."""
    if tokenizer.pad_token_id is None:
        if tokenizer.eos_token is None:
            raise ValueError("the tokenizer has neither a pad nor an EOS token; cannot pad a batch")
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"


def stop_token_ids(tokenizer, model=None) -> list[int]:
    """The tokenizer's EOS, the model's generation EOS ids and the usual end-of-turn tokens present in the vocab."""
    ids: list[int] = []
    if tokenizer.eos_token_id is not None:
        ids.append(int(tokenizer.eos_token_id))
    gen_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if gen_eos is not None:
        ids.extend(int(i) for i in (gen_eos if isinstance(gen_eos, (list, tuple)) else [gen_eos]))
    vocab = tokenizer.get_vocab()
    ids.extend(vocab[m] for m in ALWAYS_END_MARKERS if m in vocab)
    return sorted(set(ids))


def end_marker_texts(tokenizer, stop_ids: Sequence[int]) -> tuple[str, ...]:
    """The spellings of the stop tokens, for the normalizer's end-marker cut."""
    texts = [tokenizer.eos_token] if tokenizer.eos_token else []
    texts += tokenizer.convert_ids_to_tokens(list(stop_ids))
    return tuple(dict.fromkeys(t for t in texts if t))


def prompt_messages(messages: Sequence[dict], answers: Sequence[str] = ()) -> list[dict]:
    """The conversation to generate the answer for. The build stage writes the whole exchange, the answered
    assistant turn last (`eval/test.jsonl`); that turn is the reference, so it is dropped. A last assistant turn
    that is not one of the answers is refused rather than guessed about."""
    if messages[-1].get("role") == "assistant":
        if messages[-1].get("content") not in answers:
            raise ValueError("\"messages\" ends with an assistant turn that is not the answer; give the "
                             "conversation up to the answer (or end it with the answer)")
        messages = messages[:-1]
    if not messages:
        raise ValueError("\"messages\" holds only the answer; nothing to prompt with")
    return list(messages)


def render_prompt(tokenizer, prompt: str | None, messages: Sequence[dict] | None,
                  answers: Sequence[str] = ()) -> tuple[str, bool]:
    """The text to generate from, and whether it is already a chat-formatted string (no special tokens to add).

    Chat records go through the tokenizer's chat template with the generation prompt appended, after
    `prompt_messages` (the answered assistant turn left out)."""
    if messages is not None:
        if not getattr(tokenizer, "chat_template", None):
            raise ValueError("chat records (with \"messages\") need a tokenizer with a chat template")
        conversation = prompt_messages(messages, answers)
        text = tokenizer.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False)
        return text, True
    if prompt is None:
        raise ValueError("neither \"prompt\" nor \"messages\"")
    return prompt, False


def input_sha(text: str, templated: bool) -> str:
    return hashlib.sha256(f"{int(templated)}\0{text}".encode()).hexdigest()[:16]


def encode(tokenizer, texts: Sequence[str], templated: Sequence[bool]) -> list[list[int]]:
    """Token ids per prompt. Chat-templated text already holds its special tokens; raw prompts get the
    tokenizer's usual ones (a BOS for Llama-style tokenizers)."""
    out: list[list[int] | None] = [None] * len(texts)
    for flag in (False, True):
        idx = [i for i, t in enumerate(templated) if t == flag]
        if idx:
            enc = tokenizer([texts[i] for i in idx], add_special_tokens=not flag)["input_ids"]
            for i, ids in zip(idx, enc):
                out[i] = list(ids)
    return out  # type: ignore[return-value]


def length_sorted_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices grouped into batches of similar length, longest first (memory trouble shows up at once)."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def _stop_criteria(tokenizer, stop_strings: Sequence[str], prompt_len: int):
    import torch
    from transformers import StoppingCriteria

    class _StopStrings(StoppingCriteria):
        """Done when a row's generated text contains a stop string: decodes only the last few tokens per step
        (enough tokens to spell the longest stop string even at one byte per token)."""

        def __init__(self) -> None:
            self.window = 4 * max(len(s) for s in stop_strings) + 4

        def __call__(self, input_ids, scores, **kwargs):
            tails = input_ids[:, prompt_len:][:, -self.window:].tolist()
            texts = tokenizer.batch_decode(tails, skip_special_tokens=False)
            return torch.tensor([any(s in t for s in stop_strings) for t in texts], device=input_ids.device)

    return _StopStrings()


def generate_batch(model, tokenizer, batch: Sequence[Sequence[int]], settings: GenerationSettings,
                   stop_ids: Sequence[int]) -> list[Generation]:
    """Generate for one batch of token-id prompts (left-padded here) and decode each row as a whole."""
    import torch
    from transformers import GenerationConfig, StoppingCriteriaList

    pad_id = tokenizer.pad_token_id
    width = max(len(ids) for ids in batch)
    input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(batch), width), dtype=torch.long)
    for row, ids in enumerate(batch):
        if ids:
            input_ids[row, width - len(ids):] = torch.tensor(ids, dtype=torch.long)
            attention[row, width - len(ids):] = 1
    device = model.device
    config = GenerationConfig(
        max_new_tokens=settings.max_new_tokens,
        do_sample=settings.sampling,
        temperature=settings.temperature if settings.sampling else None,
        top_p=settings.top_p if settings.sampling else None,
        top_k=0 if settings.sampling else None,
        eos_token_id=list(stop_ids) or None,
        pad_token_id=pad_id,
    )
    criteria = StoppingCriteriaList([_stop_criteria(tokenizer, settings.stop_strings, width)]) \
        if settings.stop_strings else None
    with torch.inference_mode():
        out = model.generate(input_ids=input_ids.to(device), attention_mask=attention.to(device),
                             generation_config=config, stopping_criteria=criteria)
    new = out[:, width:].tolist()
    stops = set(stop_ids)
    results = []
    for tokens in new:
        cut = next((i for i, t in enumerate(tokens) if t in stops), None)
        body = tokens if cut is None else tokens[:cut]
        text = tokenizer.decode(body, skip_special_tokens=False)
        hits = [at for s in settings.stop_strings if (at := text.find(s)) >= 0]
        if hits:
            text, reason = text[:min(hits)], STOP_STRING
            while body and body[-1] == pad_id and pad_id not in stops:
                body = body[:-1]
            count = len(body)
        elif cut is not None:
            reason, count = STOP_EOS, cut + 1
        else:
            reason, count = STOP_LENGTH, len(tokens)
        results.append(Generation(text, reason, count))
    return results


def generate_all(model, tokenizer, prompts: Sequence[Sequence[int]], settings: GenerationSettings,
                 batch_size: int = 16, on_batch: Callable[[list[int], list[Generation]], None] | None = None,
                 stop_ids: Sequence[int] | None = None) -> list[Generation]:
    """Generate for every prompt in length-sorted batches; `on_batch(indices, generations)` after each batch
    (to write results as they come). Returns the generations in prompt order."""
    import torch

    ensure_pad_token(tokenizer)
    if stop_ids is None:
        stop_ids = stop_token_ids(tokenizer, model)
    if settings.sampling:
        torch.manual_seed(settings.seed)
    out: list[Generation | None] = [None] * len(prompts)
    for indices in length_sorted_batches([len(p) for p in prompts], batch_size):
        gens = generate_batch(model, tokenizer, [prompts[i] for i in indices], settings, stop_ids)
        for i, g in zip(indices, gens):
            out[i] = g
        if on_batch is not None:
            on_batch(indices, gens)
    return out  # type: ignore[return-value]
