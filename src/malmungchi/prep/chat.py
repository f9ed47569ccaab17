"""Chat mode: dialogues → `messages` → the tokenizer's chat template, with the loss on assistant turns only.

Qwen3's and Llama 3's templates have no `{% generation %}` block, so `return_assistant_tokens_mask` would mark
nothing. Instead the conversation is rendered once and each assistant message's content is located in the
rendered string, in order; the loss span is that content plus the end-of-turn token right after it (the token
the model must learn to stop with). Text after the last assistant turn is cut so every sequence ends with it.

Every message made of dialogue turns also gets a key from the source, `d{dialogue}:t{turn}` (its first turn
with content: the same under every marker policy, which may drop a turn that holds only a marker), and its
content in canonical form (`prep.identity`): the eval items' ids and `answer_canonical` (`Rendered.meta`).
"""

from __future__ import annotations

from malmungchi.corpus.tree import Block, Dialogue, Document, Narration
from malmungchi.errors import UserError
from malmungchi.prep.identity import any_content
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


Meta = tuple[str, str] | None  # per message: (its key from the source, its content in canonical form)


class ChatRenderer:
    """`text` renders the turns under the build's policies, `canonical` (a `prep.identity` renderer) in canonical
    form for the messages' meta."""

    def __init__(self, text: TextRenderer, tok, cfg, eot: str, canonical: TextRenderer | None = None):
        self.text = text
        self.canonical = canonical
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
        if self.canonical is not None:
            self.canonical._r = Rendered(doc.id, doc.id, source, doc.title, "")  # and are not counted twice
        for k, dialogue, ctx in self._dialogues(doc.segments, context):
            messages, speakers, meta = self._messages(dialogue, ctx, k)
            if not any(m["role"] == "assistant" for m in messages):
                problems.append(f"dialogue {k} has no assistant turn")
                continue
            while messages and messages[-1]["role"] != "assistant":
                messages.pop()
            r = self.render(messages, f"{doc.id}/d{k}", doc.id, source, doc.title, meta[:len(messages)])
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

    def _messages(self, dialogue: Dialogue, context: list[str], index: int = 0
                  ) -> tuple[list[dict], dict[str, str], list[Meta]]:
        plain = dialogue.plain  # (speaker, text) per turn for a dialogue of text alone: no nodes to build
        turns = plain if plain is not None else [(t.speaker, t) for t in dialogue.turns]
        names = [who for who, _ in turns]
        direct = all(n in ROLES for n in names if n is not None) and any(n is not None for n in names)
        order = list(dict.fromkeys(n for n in names if n is not None))
        second = order[1] if len(order) > 1 else None
        tokens: dict[str, str] = {}
        msgs: list[dict] = []
        meta: list[Meta] = []  # per message
        firsts: list[int | None] = []  # per message: its first turn with content (canonically), if any
        system = self.cfg.system_prompt or ""
        ctx = "\n\n".join(context) if self.cfg.narration_context != "none" else ""
        if ctx and self.cfg.narration_context == "system":
            system = f"{system}\n\n{ctx}" if system else ctx
        if system:
            msgs.append({"role": "system", "content": system})
        if ctx and self.cfg.narration_context == "user":
            msgs.append({"role": "user", "content": ctx})
        meta += [None] * len(msgs)
        firsts += [None] * len(msgs)
        role = "user"
        for n, (who, turn) in enumerate(turns):
            if direct:
                role = who or role
            elif who is not None:
                role = "assistant" if (who in self.assistants if self.assistants else who == second) else "user"
            body = turn if plain is not None else self.text.inline(turn.parts)
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
            canon = content if self.canonical is None else \
                prefix + (body if plain is not None else self.canonical.inline(turn.parts))  # text alone: as is
            has_content = any_content(canon)
            if msgs and msgs[-1]["role"] == role and role != "system":
                msgs[-1]["content"] += "\n" + content
                # (a user turn joining the narration context: only assistant messages become eval items)
                meta[-1] = ((f"d{index}:t{n}", canon) if meta[-1] is None else
                            (meta[-1][0], meta[-1][1] + "\n" + canon))
            else:
                msgs.append({"role": role, "content": content})
                meta.append((f"d{index}:t{n}", canon))
                firsts.append(None)
            if has_content and firsts[-1] is None:
                firsts[-1] = n
        self.text._r.max_speakers = max(self.text._r.max_speakers, len(tokens))
        meta = [None if m is None else (f"d{index}:t{first}" if first is not None else m[0], m[1])
                for m, first in zip(meta, firsts)]
        return msgs, {tok: name for name, tok in tokens.items()}, meta

    def render(self, messages: list[dict], rid: str, doc_id: str, source: str, title: str | None,
               meta: list[Meta] | None = None) -> Rendered:
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
        r.meta = list(meta) if meta is not None else [None] * len(messages)
        r.max_speakers = self.text._r.max_speakers
        measure(r)
        return r
