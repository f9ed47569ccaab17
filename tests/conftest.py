"""Shared fixtures: the real Qwen3 tokenizer unpacked from its committed gzip, and the bundled sample corpus."""

from __future__ import annotations

import gzip
import shutil
from importlib import resources
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="session")
def qwen3_tokenizer_dir(tmp_path_factory) -> Path:
    """A folder holding the real Qwen3 tokenizer (tokenizer.json + tokenizer_config.json)."""
    src = FIXTURES / "tokenizers" / "qwen3"
    out = tmp_path_factory.mktemp("qwen3-tokenizer")
    with gzip.open(src / "tokenizer.json.gz", "rb") as fin, open(out / "tokenizer.json", "wb") as fout:
        shutil.copyfileobj(fin, fout)
    shutil.copy(src / "tokenizer_config.json", out / "tokenizer_config.json")
    return out


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    """The sample corpus shipped inside the package (what `malmungchi quickstart` uses)."""
    return Path(str(resources.files("malmungchi") / "data" / "sample"))
