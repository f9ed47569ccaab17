"""What the Hub calls things, in one place: repo ids (`OWNER/NAME`, or a legacy model's bare `NAME`), the Hub
cache's folder of a repo at a commit (huggingface_hub's layout: `models--` + the id with `/` spelled `--`, then
`snapshots/COMMIT`), and a local folder's name from its path, written with `/` or `\\`.

`hub.push` checks `--repo` and `--base-model` with `is_repo_id` and shortens paths with `cache_part` and
`last_part`; `hub.card.recorded_base` names a run's base with `snapshot` and `last_part`.
"""

from __future__ import annotations

import re

_PART = r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}"  # letters, digits, '-', '_', '.'; at most 96 characters
REPO_ID = re.compile(rf"^(?:(?P<owner>{_PART})/)?(?P<name>{_PART})$")
HUB_CACHE = re.compile(r"(?:^|[\\/])(?P<part>models--(?P<repo>[^\\/]+)[\\/]snapshots[\\/](?P<revision>[^\\/]+)"
                       r"(?P<rest>[\\/].*)?)$")
COMMIT = re.compile(r"[0-9a-f]{40}")


def is_repo_id(name: object, *, legacy: bool = False) -> bool:
    """True for a repo id the Hub accepts: OWNER/NAME (no '--' or '..', not ending in '.git' or '.'), or with
    `legacy` also a bare NAME, as old models have (`gpt2`)."""
    m = REPO_ID.match(name) if isinstance(name, str) else None
    return bool(m) and (legacy or m["owner"] is not None) and "--" not in name and ".." not in name \
        and not name.endswith((".git", "."))


def cache_part(path: str) -> str | None:
    """A path inside the Hub cache from `models--` on, spelled with `/` (its repo and commit stay readable), or
    None for a path outside it."""
    m = HUB_CACHE.search(path)
    return m["part"].replace("\\", "/") if m else None


def snapshot(path: str) -> tuple[str, str] | None:
    """(repo id, commit) when `path` is a model folder of the Hub cache itself, else None (also for a folder or file
    inside one: that is not the repo's model)."""
    m = HUB_CACHE.search(path)
    if not m or not COMMIT.fullmatch(m["revision"]) or (m["rest"] or "/") not in ("/", "\\"):
        return None
    return m["repo"].replace("--", "/"), m["revision"]


def last_part(path: str) -> str:
    """The last part of a path written with `/` or `\\` (a trailing separator ignored); a root stays as it is."""
    return re.split(r"[\\/]", path.rstrip("\\/"))[-1] or path
