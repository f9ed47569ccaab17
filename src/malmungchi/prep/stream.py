"""Reading, parsing and (text mode) rendering the inputs, in a process pool when the input is large.

`stream()` yields (SourceFile, rendered | None) per input, in input order. With a pool, at most AHEAD_BYTES of
input (or two files per worker) are in flight, so memory does not grow with the corpus, and the pool is started
before the first item is asked for (the caller can load the tokenizer meanwhile, under `results_taken_meanwhile`:
with tiktoken the build does, and encodes what the workers send back in its own threads). Given an encoder (text
mode, the build's tokens known before reading, the tokenizer's own encoder), the workers also encode what they
render, each single-threaded (one per core), without offsets where the tokenizer allows it (`prep.positions`);
they send back rendered texts with their token ids, never document trees or Rust encodings. The result is the
same as reading serially.

`parse_all()` reads and parses every input once and keeps the trees: `stream(..., parsed=)` then renders copies
of them, so one parse serves builds of the same inputs under several marker policies (`experiment markers`).
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import sys
from array import array
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager

from malmungchi.corpus.parse import collector_paused
from malmungchi.prep.encode import BATCH_CHARS, TextEncoder, batches
from malmungchi.prep.identity import Canonical
from malmungchi.prep.policies import Policies
from malmungchi.prep.readers import SourceFile, read_source
from malmungchi.prep.render import Rendered, TextRenderer
from malmungchi.schemas.config import BuildConfig
from malmungchi.schemas.registry import Registry

PARALLEL_BYTES = 2 << 20  # below this a process pool costs more than it saves
AHEAD_BYTES = 24 << 20  # input the readers may work ahead: two encode batches of Korean text, so they keep
# the cores busy while the main process encodes (a constant, whatever the corpus size)

SWITCH_INTERVAL = 0.0005  # seconds: `results_taken_meanwhile`
NO_CONTENT = "no content: only markers and asides"  # a document dropped as EMPTY under every policy
_worker: tuple | None = None  # (registry, cfg, renderer | None, encoder | None) in a pool worker


def _renderer(registry: Registry, cfg: BuildConfig) -> tuple[TextRenderer, Canonical]:
    return TextRenderer(Policies(registry, cfg), cfg.speakers), Canonical(registry, cfg)


def _init(registry: Registry, cfg: BuildConfig, render: bool = False, encoder: TextEncoder | None = None) -> None:
    global _worker
    if encoder is not None:
        os.environ["TOKENIZERS_PARALLELISM"] = "false"  # one worker per core already
    _worker = (registry, cfg, _renderer(registry, cfg) if render else None, encoder)


def prepare(src: SourceFile, renderer: tuple[TextRenderer, Canonical] | None,
            encoder: TextEncoder | None = None) -> tuple[SourceFile, list | None]:
    """With a renderer (text mode): every document rendered, with its identity (`prep.identity`) and figures,
    and the tree let go, so only strings (and, with an encoder, token ids) cross from a worker. `rendered` is
    [(document, Rendered | Piece | None for "renders to no text" | NO_CONTENT)]."""
    if renderer is None or src.file_broken:
        return src, None
    out = []
    text_r, canonical = renderer
    for doc in src.documents:
        r = text_r.render(doc, src.key)
        r.cuts = array("q", r.cuts)  # a compact pickle: a book has thousands of cut offsets
        if r.text.strip():
            canonical.stamp(r, doc, src.key)
        if not r.text.strip():
            out.append(((doc.id, doc.title), None))
        elif not r.has_content:  # only markers (and asides): under `drop` it would render to nothing
            out.append(((doc.id, doc.title), NO_CONTENT))
        else:
            out.append(((doc.id, doc.title), r))
    src.documents = []
    if encoder is not None:
        kept = [i for i, (_, r) in enumerate(out) if isinstance(r, Rendered)]
        pieces = (p for batch in batches((out[i][1] for i in kept), BATCH_CHARS, size=lambda r: len(r.text))
                  for p in encoder.encode(batch))
        for i, piece in zip(kept, pieces):
            out[i] = (out[i][0], piece)
    return src, out


def _prepare_one(args: tuple[str, str]) -> tuple[SourceFile, list | None]:
    assert _worker is not None
    registry, cfg, renderer, encoder = _worker
    with collector_paused():  # the tree is rendered and let go before the collector could look at it
        return prepare(read_source(args[0], args[1], registry, cfg), renderer, encoder)


def parse_all(inputs: list[tuple[str, str]], registry: Registry, cfg: BuildConfig) -> list[SourceFile]:
    """Every input read and parsed, trees kept, in input order. Marker policies play no part in reading, so
    this serves every build of `inputs` whose reading options (`cfg`'s columns, grouping, …) are these."""
    out = []
    for path, key in inputs:
        with collector_paused():
            out.append(read_source(path, key, registry, cfg))
    return out


def stream(inputs: list[tuple[str, str]], registry: Registry, cfg: BuildConfig, jobs: int | None, render: bool,
           progress: Callable | None = None, encoder: TextEncoder | None = None,
           parsed: list[SourceFile] | None = None) -> Iterator:
    """(SourceFile, rendered | None) per input, in input order (see the module docstring). Without a pool nothing
    is encoded. With `parsed` (`parse_all` of the same inputs) nothing is read: each tree is rendered in this
    process from a copy of its SourceFile (the parsed trees stay as they were)."""
    sizes = [os.path.getsize(p) if os.path.isfile(p) else 0 for p, _ in inputs]
    if parsed is not None:
        if [s.key for s in parsed] != [k for _, k in inputs]:
            raise ValueError("parsed sources are not those of these inputs")
        return _from_parsed(parsed, sizes, registry, cfg, render, progress)
    jobs = jobs or os.cpu_count() or 1
    if jobs > 1 and len(inputs) > 1 and sum(sizes) >= PARALLEL_BYTES and fork_is_safe():
        return _Pooled(inputs, sizes, registry, cfg, jobs, render, progress, encoder)
    return _serial(inputs, sizes, registry, cfg, render, progress)


def _serial(inputs, sizes, registry: Registry, cfg: BuildConfig, render: bool, progress) -> Iterator:
    renderer = _renderer(registry, cfg) if render else None
    for (p, k), size in zip(inputs, sizes):
        with collector_paused():  # as in _prepare_one
            res = prepare(read_source(p, k, registry, cfg), renderer)
        if progress:
            progress(size)
        yield res


def _from_parsed(parsed: list[SourceFile], sizes, registry: Registry, cfg: BuildConfig, render: bool,
                 progress) -> Iterator:
    renderer = _renderer(registry, cfg) if render else None
    for src, size in zip(parsed, sizes):
        with collector_paused():
            res = prepare(dataclasses.replace(src), renderer)  # a copy: `prepare` lets its documents go
        if progress:
            progress(size)
        yield res


@contextmanager
def results_taken_meanwhile(interval: float = SWITCH_INTERVAL) -> Iterator[None]:
    """For work this process does in Python while the pool's readers run (the build loads the tokenizer): the
    pool's thread that takes the readers' results needs the GIL, which such work holds for Python's switch
    interval (5 ms) at a time and long C calls (the tokenizer's JSON) longer; meanwhile a reader whose result fills
    the pipe waits, idle. A shorter interval lets that thread in more often."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(min(old, interval))
    try:
        yield
    finally:
        sys.setswitchinterval(old)


def fork_is_safe() -> bool:
    """False where processes cannot be forked (Windows), and when this process has imported polars (a library
    caller that read a table first): polars' thread pool does not survive a fork, and a forked reader of a CSV
    file would wait for it forever. The inputs are then read in this process. (Whether the pool has started cannot
    be asked; the CLI's build process never imports polars before it forks. Workers are forked, not spawned, so
    they inherit the prepared encoder.)"""
    return "polars" not in sys.modules and "fork" in multiprocessing.get_all_start_methods()


class _Pooled:
    """The pool and its bounded queue of submitted inputs; started (and topped up) on construction. Iterate it
    once for the results; `close()` (also at the end of the iteration, or when it is abandoned) cancels what has
    not started and waits for the workers, so a caller that fails before iterating must call it."""

    def __init__(self, inputs, sizes, registry: Registry, cfg: BuildConfig, jobs: int, render: bool, progress,
                 encoder: TextEncoder | None):
        self.jobs, self.progress = jobs, progress
        self.pending: deque = deque()
        self.todo = iter(zip(inputs, sizes))
        self.in_flight = 0  # input bytes submitted and not yet handed to the caller
        # workers encode single-threaded; saying so in the environment they are forked with also keeps the Rust
        # tokenizer from warning about a fork after its thread pool was used (restored once they are started)
        quiet = encoder is not None and "TOKENIZERS_PARALLELISM" not in os.environ
        if quiet:
            os.environ["TOKENIZERS_PARALLELISM"] = "false"
        self.pool = ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("fork"), initializer=_init,
                                        initargs=(registry, cfg, render, encoder))
        try:
            self.top_up()
        finally:
            if quiet:
                del os.environ["TOKENIZERS_PARALLELISM"]

    def top_up(self) -> None:
        while len(self.pending) < 2 * self.jobs or self.in_flight < AHEAD_BYTES:
            nxt = next(self.todo, None)
            if nxt is None:
                return
            self.pending.append((self.pool.submit(_prepare_one, nxt[0]), nxt[1]))
            self.in_flight += nxt[1]

    def __iter__(self) -> Iterator:
        try:
            while self.pending:
                fut, size = self.pending.popleft()
                res = fut.result()
                self.in_flight -= size
                self.top_up()
                if self.progress:
                    self.progress(size)
                yield res
        finally:
            self.close()

    def close(self) -> None:
        self.todo = iter(())
        for fut, _ in self.pending:
            fut.cancel()
        self.pool.shutdown(wait=True, cancel_futures=True)
