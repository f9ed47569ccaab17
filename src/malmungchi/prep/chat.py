"""Chat mode: dialogues → `messages` → the tokenizer's chat template, with the loss on assistant turns only.

Qwen3's and Llama 3's templates have no `{% generation %}` block, so `return_assistant_tokens_mask` would mark
nothing. Instead the conversation is rendered once and each assistant message's content is located in the
rendered string, in order; the loss span is that content plus the end-of-turn token right after it (the token
the model must learn to stop with). Text after the last assistant turn is cut so every sequence ends with it.
"""

from __future__ import annotations

from malmungchi.corpus.tree import Block, Dialogue, Document, Narration
from malmungchi.errors import UserError
from malmungchi.prep.policies import speaker_token
from malmungchi.prep.render import Rendered, TextRenderer, measure

ROLES = {"system", "user", "assistant"}


class ChatError(UserError):
    """A user-facing problem of this stage (see `malmungchi.errors.UserError`)."""


def end_of_turn(tok) -> str:
    """The special token the template puts right after an assistant message (`<|im_end|>`, `<|eot_id|>`)."""
    if not getattr(tok, "chat_template", None):
        raise ChatError("the tokenizer has no chat template; use --mode text or a tokenizer with one")
    probe = "\uac00\ub098\ub2e4PROBE"
    text = tok.apply_chat_template([{"role": "user", "content": "u"}, {"role": "assistant", "content": probe}],
                                   tokenize=False)
    rest = text[text.rindex(probe) + len(probe):]
    specials = sorted({t.content for t in tok.added_tokens_decoder.values() if t.special}, key=len, reverse=True)
    for s in specials:
        if rest.startswith(s):
            return s
    if tok.eos_token and tok.eos_token in rest:
        return tok.eos_token
    raise ChatError("cannot find the end-of-turn token the chat template puts after an assistant message")


class ChatRenderer:
    def __init__(self, text: TextRenderer, tok, cfg, eot: str):
        self.text = text
        self.tok = tok
        self.cfg = cfg
        self.eot = eot
        self.assistants = set(cfg.assistant_speakers)

    def conversations(self, doc: Document, source: str) -> tuple[list[Rendered], list[str]]:
        """Every dialogue of `doc` as a conversation; also the reasons for dialogues that yield none."""
        out: list[Rendered] = []
        problems: list[str] = []
        context: list[str] = []
        self.text._r = Rendered(doc.id, doc.id, source, doc.title, "")  # marker counts land here
        for k, dialogue, ctx in self._dialogues(doc.segments, context):
            messages, speakers = self._messages(dialogue, ctx)
            if not any(m["role"] == "assistant" for m in messages):
                problems.append(f"dialogue {k} has no assistant turn")
                continue
            while messages and messages[-1]["role"] != "assistant":
                messages.pop()
            r = self.render(messages, f"{doc.id}/d{k}", doc.id, source, doc.title)
            r.speakers = [speakers] if speakers else []
            if not out:
                r.markers, r.cues = self.text._r.markers, self.text._r.cues
            out.append(r)
        return out, problems

    def _dialogues(self, segments, context: list[str], counter=None):
        counter = counter if counter is not None else [0]
        for seg in segments:
            if isinstance(seg, Narration):
                body = self.text.inline(seg.parts)
                if body:
                    context.append(body)
            elif isinstance(seg, Dialogue):
                yield counter[0], seg, list(context)
                counter[0] += 1
                context.clear()
            elif isinstance(seg, Block):
                yield from self._dialogues(seg.segments, context, counter)

    def _messages(self, dialogue: Dialogue, context: list[str]) -> tuple[list[dict], dict[str, str]]:
        names = [t.speaker for t in dialogue.turns]
        direct = all(n in ROLES for n in names if n is not None) and any(n is not None for n in names)
        order = list(dict.fromkeys(n for n in names if n is not None))
        second = order[1] if len(order) > 1 else None
        tokens: dict[str, str] = {}
        msgs: list[dict] = []
        system = self.cfg.system_prompt or ""
        ctx = "\n\n".join(context) if self.cfg.narration_context != "none" else ""
        if ctx and self.cfg.narration_context == "system":
            system = f"{system}\n\n{ctx}" if system else ctx
        if system:
            msgs.append({"role": "system", "content": system})
        if ctx and self.cfg.narration_context == "user":
            msgs.append({"role": "user", "content": ctx})
        role = "user"
        for turn in dialogue.turns:
            who = turn.speaker
            if direct:
                role = who or role
            elif who is not None:
                role = "assistant" if (who in self.assistants if self.assistants else who == second) else "user"
            body = self.text.inline(turn.parts)
            if not body:
                continue
            prefix = ""
            if who is not None and not direct:
                if self.cfg.speakers == "name":
                    prefix = f"{who}: "
                elif self.cfg.speakers == "token":
                    if who not in tokens:
                        tokens[who] = speaker_token(len(tokens) + 1)
                    prefix = tokens[who]
            content = prefix + body
            if msgs and msgs[-1]["role"] == role and role != "system":
                msgs[-1]["content"] += "\n" + content
            else:
                msgs.append({"role": role, "content": content})
        self.text._r.max_speakers = max(self.text._r.max_speakers, len(tokens))
        return msgs, {v: k for k, v in tokens.items()}

    def render(self, messages: list[dict], rid: str, doc_id: str, source: str, title: str | None) -> Rendered:
        text = self.tok.apply_chat_template(messages, tokenize=False)
        loss: list[tuple[int, int]] = []
        cursor = 0
        for m in messages:
            if m["role"] != "assistant":
                # move past this message so a later assistant reply is not matched inside it
                at = text.find(m["content"].strip(), cursor)
                if at >= 0:
                    cursor = at + len(m["content"].strip())
                continue
            content = m["content"]
            at = text.find(content, cursor)
            if at < 0:
                content = content.strip()
                at = text.find(content, cursor)
            if at < 0:
                raise ChatError(f"{rid}: the chat template changed an assistant message; cannot place its loss")
            end = at + len(content)
            if text.startswith(self.eot, end):
                end += len(self.eot)
            else:
                nxt = text.find(self.eot, end)
                if nxt >= 0 and not text[end:nxt].strip():
                    end = nxt + len(self.eot)
            loss.append((at, end))
            cursor = end
        if loss:
            text = text[:loss[-1][1]]
        cuts = []
        r = Rendered(rid, doc_id, source, title, text, cuts, [], loss, messages)
        r.max_speakers = self.text._r.max_speakers
        measure(r)
        return r
