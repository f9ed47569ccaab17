"""The hub offline for one load, not for the whole process.

Loading a tokenizer or model from a folder (or a cached hub id) must never touch the network, so those loads run
inside `hub_offline()`: `HF_HUB_OFFLINE=1` and huggingface_hub's own flag (read once, at its import: a process
that imported it earlier goes by the flag) are set for the duration and put back afterwards. A library caller
that builds and then pushes to the Hub in one process still can.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def hub_offline() -> Iterator[None]:
    import huggingface_hub.constants as hub

    env, flag = os.environ.get("HF_HUB_OFFLINE"), hub.HF_HUB_OFFLINE
    os.environ["HF_HUB_OFFLINE"] = "1"
    hub.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        hub.HF_HUB_OFFLINE = flag
        if env is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = env
