"""The marker policies an experiment compares, as build settings.

`special`, `text` and `strip` set every marker's policy. `drop` deletes what the markers mark where that leaves
a document to learn from: inline markers (`|SOUND|>` and its cue text) and terminators go; blocks (titles,
dialogues) lose their markers but keep their text, as with `strip` — dropping a dialogue block's content would
leave nothing to evaluate on.
"""

from __future__ import annotations

from malmungchi.schemas.registry import MarkerKind, Registry

ARMS = ("special", "text", "strip", "drop")


def policy_settings(arm: str, registry: Registry) -> dict:
    """`default_policy` and `policies` for a build under `arm`."""
    if arm not in ARMS:
        raise ValueError(f"policy {arm!r}: choose from {', '.join(ARMS)}")
    if arm != "drop":
        return {"default_policy": arm, "policies": {}}
    return {"default_policy": "strip",
            "policies": {m.name: "drop" for m in registry.markers if m.kind is not MarkerKind.block}}
