"""Third-party log lines that say nothing to a malmungchi user, hidden unless they ask (`malmungchi -v`).

bitsandbytes, on CPUs with AVX512-BF16, logs at import that it could not load an optional kernel package
(`Failed to load CPU gemm_4bit_forward from kernels-community: No module named 'kernels'`) and falls back to its
own kernel, which works. Raising that logger's level hides the line without touching anyone else's logging; with
`verbose` it is left at the default so the line shows.

transformers' checkpoint rotation sorts checkpoints by modification time and, when two were written within a
second (short steps: a small model, a test run), says `mtime may not be reliable on this filesystem, falling back
to numerical ordering`, which is the ordering wanted anyway. That one message is filtered out of its logger.

peft asks a model `is_gradient_checkpointing`, which transformers 5 deprecates with a FutureWarning on every
adapter load (training, `eval run`, merges), and warns about `save_embedding_layers` when an adapter with
trained embedding rows is saved, which is what malmungchi asks for: `quiet_library_warnings` filters both.
"""

from __future__ import annotations

import logging
import warnings

NOISY_LOGGERS = ("bitsandbytes.backends.cpu.ops",)
NOISY_MESSAGES = {"transformers.trainer_utils": ("mtime may not be reliable on this filesystem",)}


class _Without(logging.Filter):
    def __init__(self, texts: tuple[str, ...]):
        super().__init__()
        self.texts = texts

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(t in message for t in self.texts)


def quiet_third_party_logs(verbose: bool = False) -> None:
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET if verbose else logging.ERROR)
    for name, texts in NOISY_MESSAGES.items():
        logger = logging.getLogger(name)
        for f in [f for f in logger.filters if isinstance(f, _Without)]:
            logger.removeFilter(f)
        if not verbose:
            logger.addFilter(_Without(texts))


def quiet_library_warnings() -> None:
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
    warnings.filterwarnings("ignore", message=".*save_embedding_layers.*")
