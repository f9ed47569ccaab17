"""Shared fixtures: the real Qwen3 tokenizer unpacked from its committed gzip, and the bundled sample corpus."""

from __future__ import annotations

import gzip
import shutil
from importlib import resources
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"


def _unpack_tokenizer(tmp_path_factory, name: str) -> Path:
    src = FIXTURES / "tokenizers" / name
    out = tmp_path_factory.mktemp(f"{name}-tokenizer")
    with gzip.open(src / "tokenizer.json.gz", "rb") as fin, open(out / "tokenizer.json", "wb") as fout:
        shutil.copyfileobj(fin, fout)
    for f in src.iterdir():
        if f.name not in ("tokenizer.json.gz", "LICENSE"):
            shutil.copy(f, out / f.name)
    return out


@pytest.fixture(scope="session")
def qwen3_tokenizer_dir(tmp_path_factory) -> Path:
    """A folder holding the real Qwen3 tokenizer (tokenizer.json + tokenizer_config.json)."""
    return _unpack_tokenizer(tmp_path_factory, "qwen3")


@pytest.fixture(scope="session")
def llama3_tokenizer_dir(tmp_path_factory) -> Path:
    """The real Llama 3 tokenizer (adds a BOS, no pad token)."""
    return _unpack_tokenizer(tmp_path_factory, "llama3")


@pytest.fixture(scope="session")
def kogpt2_tokenizer_dir(tmp_path_factory) -> Path:
    """The real KoGPT2 v1 tokenizer folder, config.json included (Metaspace-style BPE, NFKC)."""
    return _unpack_tokenizer(tmp_path_factory, "kogpt2")


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    """The sample corpus shipped inside the package (what `malmungchi quickstart` uses)."""
    return Path(str(resources.files("malmungchi") / "data" / "sample"))



@pytest.fixture(scope="module")
def one_torch_thread():
    """A tiny model's matmuls are far too small to split; on a shared 2-core box two threads mostly wait."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
