"""Per-marker rendering policies: what each `|NAME|>` becomes in the training text.

`special` → a registered special token `<|name|>` (one id), `text` → the source spelling `|NAME|>`, `strip` → the
marker goes but its content (block text, cue text) stays, `drop` → marker and content go, `replace:"…"` → the
given string. A policy is looked up by the literal marker name (`START_OF_TITLE`) and then by its registry name
(`TITLE`), then the default, so one line can set both ends of a block.
"""

from __future__ import annotations

from dataclasses import dataclass

from malmungchi.schemas.config import BuildConfig
from malmungchi.schemas.registry import Registry


def special_spelling(name: str) -> str:
    return f"<|{name.lower()}|>"


def speaker_token(n: int) -> str:
    return f"<|speaker_{n}|>"


@dataclass(frozen=True)
class MarkerInfo:
    token_name: str  # START_OF_TITLE, SOUND, …
    spec_name: str  # TITLE, SOUND, …
    policy: str
    rendered: str  # what the marker itself becomes ("" for strip/drop)
    description: str


class Policies:
    def __init__(self, registry: Registry, cfg: BuildConfig):
        self.cfg = cfg
        self.registry = registry
        known = set(registry.tokens) | {m.name for m in registry.markers}
        unknown = sorted(set(cfg.policies) - known - {"SPEAKER"})
        if unknown:
            import difflib

            lines = []
            for u in unknown:
                hint = difflib.get_close_matches(u, sorted(known), n=1)
                lines.append(f"policy for unknown marker {u!r}" + (f" (did you mean {hint[0]!r}?)" if hint else ""))
            raise ValueError("; ".join(lines))
        self.info: dict[str, MarkerInfo] = {}
        for token_name, (spec, _role) in registry.tokens.items():
            policy = cfg.policies.get(token_name) or cfg.policies.get(spec.name) or cfg.default_policy
            self.info[token_name] = MarkerInfo(token_name, spec.name, policy, _render(token_name, policy),
                                               spec.description)
        self.kinds = {m.name: m.kind for m in registry.markers}

    def marker(self, token_name: str) -> str:
        return self.info[token_name].rendered

    def policy(self, token_name: str) -> str:
        return self.info[token_name].policy

    def block_dropped(self, name: str) -> bool:
        return self.policy(f"START_OF_{name}") == "drop"

    def special_tokens(self) -> list[str]:
        """The marker tokens to register, in registry order (deterministic ids)."""
        return [i.rendered for i in self.info.values() if i.policy == "special"]

    def manifest(self, ids: dict[str, int]) -> dict:
        return {name: {"policy": i.policy, "token": i.rendered if i.policy == "special" else None,
                       "id": ids.get(i.rendered) if i.policy == "special" else None,
                       "rendered": i.rendered, "description": i.description, "kind": self.kinds[i.spec_name].value}
                for name, i in self.info.items()}

def _render(token_name: str, policy: str) -> str:
    if policy == "special":
        return special_spelling(token_name)
    if policy == "text":
        return f"|{token_name}|>"
    if policy in ("strip", "drop"):
        return ""
    return policy[len("replace:"):]
