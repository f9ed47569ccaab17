"""Third-party log lines that say nothing to a malmungchi user, hidden unless they ask (`malmungchi -v`).

bitsandbytes, on CPUs with AVX512-BF16, logs at import that it could not load an optional kernel package
(`Failed to load CPU gemm_4bit_forward from kernels-community: No module named 'kernels'`) and falls back to its
own kernel, which works. Raising that logger's level hides the line without touching anyone else's logging; with
`verbose` it is left at the default so the line shows.
"""

from __future__ import annotations

import logging

NOISY_LOGGERS = ("bitsandbytes.backends.cpu.ops",)


def quiet_third_party_logs(verbose: bool = False) -> None:
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET if verbose else logging.ERROR)
