"""Chat mode's conversations of every document, in input order: rendered with the chat template in forked
processes when the input is large.

Most of a chat-mode build went to the chat template: transformers renders it with Jinja in a sandbox, a few
hundred microseconds a conversation, and a dialogue corpus has tens of thousands of them, while the second core
waited. The documents' trees are already in this process when the conversations are made, so the workers are
forked then and inherit them (and the tokenizer with its template); each takes a run of files and sends back
plain results. The build takes them in input order, so it is the same as rendering them here.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor

from malmungchi.corpus.parse import collector_paused
from malmungchi.corpus.tree import Document
from malmungchi.prep import chat as chatmod
from malmungchi.prep.identity import text_key
from malmungchi.prep.readers import SourceFile
from malmungchi.prep.render import Rendered, TextRenderer
from malmungchi.prep.stream import PARALLEL_BYTES, fork_is_safe

Result = tuple[str, list[Rendered], list[str]]  # a document's identity, its conversations, why it has none
_state: tuple | None = None  # (sources, chat renderer, canonical renderer) in a forked worker


def document(doc: Document, key: str, chat: chatmod.ChatRenderer, canonical: TextRenderer) -> Result:
    """One document: its identity (`prep.identity`), its conversations, and the reasons for dialogues that made
    none (a chat-template error is one)."""
    identity = text_key(canonical.render(doc, key).text)
    try:
        rs, problems = chat.conversations(doc, key)
    except chatmod.ChatError as exc:
        rs, problems = [], [str(exc)]
    return identity, rs, problems


def _files(indices: list[int]) -> tuple[list[list[Result]], int]:
    """The results of these files' documents, and the chat renderer's speaker count after the last of them."""
    assert _state is not None
    sources, chat, canonical = _state
    with collector_paused():
        out = [[document(doc, sources[i].key, chat, canonical) for doc in sources[i].documents] for i in indices]
    return out, chat.text._r.max_speakers


def conversations(sources: list[SourceFile], chat: chatmod.ChatRenderer, canonical: TextRenderer,
                  jobs: int | None = None) -> Iterator[tuple[SourceFile, Document, Result]]:
    """(source, document, result) for every document of every readable source, in input order."""
    todo = [i for i, s in enumerate(sources) if not s.file_broken and s.documents]
    jobs = jobs or os.cpu_count() or 1
    if jobs < 2 or len(todo) < 2 or sum(sources[i].size for i in todo) < PARALLEL_BYTES or not fork_is_safe():
        for i in todo:
            for doc in sources[i].documents:
                yield sources[i], doc, document(doc, sources[i].key, chat, canonical)
        return
    global _state
    # runs of files of about equal size, a few per worker so that one large file does not hold up the rest
    runs: list[list[int]] = [[]]
    share = sum(sources[i].size for i in todo) / (4 * jobs)
    size = 0
    for i in todo:
        if runs[-1] and size >= share:
            runs.append([])
            size = 0
        runs[-1].append(i)
        size += sources[i].size
    quiet = "TOKENIZERS_PARALLELISM" not in os.environ  # the Rust tokenizer warns about a fork after its threads
    if quiet:
        os.environ["TOKENIZERS_PARALLELISM"] = "false"
    _state = (sources, chat, canonical)
    try:
        with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("fork")) as pool:
            for run, (results, speakers) in zip(runs, pool.map(_files, runs)):
                for i, per_doc in zip(run, results):
                    yield from ((sources[i], doc, r) for doc, r in zip(sources[i].documents, per_doc))
        # what rendering them here leaves behind: conversations cut later (`prep.chatcut`) take their speaker
        # count from the chat renderer's last document
        last = sources[todo[-1]].documents[-1]
        chat.text._r = Rendered(last.id, last.id, sources[todo[-1]].key, last.title, "")
        chat.text._r.max_speakers = speakers
    finally:
        _state = None
        if quiet:
            del os.environ["TOKENIZERS_PARALLELISM"]
