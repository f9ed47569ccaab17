"""The marker registry: which `|NAME|>` markers exist, what kind each is and where it may stand."""

from __future__ import annotations

import difflib
from enum import Enum
from functools import cached_property

from pydantic import BaseModel, ConfigDict, Field, field_validator

BOOK = "BOOK"  # the context name for "book level" in `inside`


class MarkerKind(str, Enum):
    block = "block"  # START_OF_X ... END_OF_X
    inline = "inline"  # a point cue such as SOUND
    terminator = "terminator"  # END_OF_BOOK


class MarkerSpec(BaseModel):
    """One registered marker. For a block, `name` is the block name X of START_OF_X/END_OF_X."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Z][A-Z0-9_]*$")
    kind: MarkerKind
    description: str = ""
    inside: tuple[str, ...] = (BOOK,)

    @field_validator("name")
    @classmethod
    def _no_block_prefix(cls, v: str) -> str:
        if v.startswith(("START_OF_", "END_OF_")) and v != "END_OF_BOOK":
            raise ValueError(f"register the block name without START_OF_/END_OF_ (e.g. {v.split('_OF_', 1)[1]!r})")
        return v


DEFAULT_MARKERS: tuple[MarkerSpec, ...] = (
    MarkerSpec(name="TITLE", kind=MarkerKind.block, description="제목"),
    MarkerSpec(name="DIALOGUE", kind=MarkerKind.block, description="대화"),
    MarkerSpec(name="END_OF_BOOK", kind=MarkerKind.terminator, description="끝"),
    MarkerSpec(name="SOUND", kind=MarkerKind.inline, description="소리", inside=(BOOK, "DIALOGUE")),
)


class Registry(BaseModel):
    """All markers in force: the defaults plus those registered in the config file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    markers: tuple[MarkerSpec, ...] = DEFAULT_MARKERS
    # False: start-only spelling allowed (a block closes at the end of its START line when text follows on it, or
    # before the next block marker or |END_OF_BOOK|> with a warning); True: every block needs its |END_OF_X|>
    require_end: bool = False
    # speech-transcript conventions of tables (`corpus.kspon`): the style of every table, and (glob, style) pairs
    # that override it per file, first match wins
    transcript_style: str = "none"
    transcript_patterns: tuple[tuple[str, str], ...] = ()

    def _copy(self, **changes) -> Registry:
        fields = {"markers": self.markers, "require_end": self.require_end,
                  "transcript_style": self.transcript_style, "transcript_patterns": self.transcript_patterns}
        return Registry(**(fields | changes))

    def with_extras(self, extras: dict[str, dict]) -> Registry:
        specs = {m.name: m for m in self.markers}
        for name, fields in extras.items():
            specs[name] = MarkerSpec(name=name, **fields)
        return self._copy(markers=tuple(specs.values()))

    def strict(self, require_end: bool = True) -> Registry:
        return self._copy(require_end=require_end)

    def with_transcripts(self, style: str, patterns: dict[str, str] | None = None) -> Registry:
        """Tables read with the `style` conventions (and `patterns` per file); a kspon style anywhere registers the
        BACKCHANNEL cue its backchannels become."""
        pairs = tuple((patterns or {}).items())
        markers = self.markers
        if "kspon" in (style, *(s for _, s in pairs)) and not any(m.name == "BACKCHANNEL" for m in markers):
            markers = markers + (MarkerSpec(name="BACKCHANNEL", kind=MarkerKind.inline, description="맞장구",
                                            inside=(BOOK, "DIALOGUE")),)
        return self._copy(markers=markers, transcript_style=style, transcript_patterns=pairs)

    def style_for(self, path: str) -> str:
        """The transcript style of the table at `path`."""
        import fnmatch
        import os

        norm = path.replace(os.sep, "/")
        for pattern, style in self.transcript_patterns:
            if fnmatch.fnmatch(norm, pattern) or fnmatch.fnmatch(norm, f"*/{pattern}") or \
                    fnmatch.fnmatch(os.path.basename(norm), pattern):
                return style
        return self.transcript_style

    @cached_property
    def tokens(self) -> dict[str, tuple[MarkerSpec, str]]:
        """Every literal marker name (START_OF_TITLE, SOUND, ...) → (spec, role) with role open/close/point."""
        out: dict[str, tuple[MarkerSpec, str]] = {}
        for spec in self.markers:
            if spec.kind is MarkerKind.block:
                out[f"START_OF_{spec.name}"] = (spec, "open")
                out[f"END_OF_{spec.name}"] = (spec, "close")
            else:
                out[spec.name] = (spec, "point")
        return out

    @cached_property
    def canonical(self) -> dict[str, tuple[str, MarkerSpec, str]]:
        """Canonical spelling `|NAME|>` → (name, spec, role): the fast path for well-formed markers."""
        return {f"|{name}|>": (name, spec, role) for name, (spec, role) in self.tokens.items()}

    def near_miss(self, name: str) -> str | None:
        """The known marker name closest to an unknown one, if it is close enough to be a typo."""
        candidates = difflib.get_close_matches(name, self.tokens.keys(), n=1, cutoff=0.75)
        return candidates[0] if candidates else None


def default_registry() -> Registry:
    return Registry()
