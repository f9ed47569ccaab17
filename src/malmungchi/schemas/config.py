"""Configuration: `malmungchi.toml` or `[tool.malmungchi]` in `pyproject.toml`, nearest one up from the inputs."""

from __future__ import annotations

import difflib
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from malmungchi.schemas.registry import MarkerKind, Registry, default_registry


class ConfigError(Exception):
    """A configuration problem; `lines` holds one clear line per error, all reported at once."""

    def __init__(self, lines: list[str]):
        super().__init__("\n".join(lines))
        self.lines = lines


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class MarkerEntry(_Strict):
    kind: MarkerKind
    description: str = ""
    inside: list[str] = Field(default_factory=lambda: ["BOOK"])


class LintConfig(_Strict):
    select: list[str] = Field(default_factory=lambda: ["ALL"])
    ignore: list[str] = Field(default_factory=list)
    exclude: list[str] = Field(default_factory=list, description="glob patterns of paths to skip")


class Config(_Strict):
    """The whole `[tool.malmungchi]` table. Later stages add their own sections."""

    markers: dict[str, MarkerEntry] = Field(default_factory=dict)
    lint: LintConfig = Field(default_factory=LintConfig)
    build: dict[str, Any] = Field(default_factory=dict)
    train: dict[str, Any] = Field(default_factory=dict)
    eval: dict[str, Any] = Field(default_factory=dict)

    # where the config came from (None: built-in defaults)
    source: Path | None = Field(default=None, exclude=True)

    def registry(self) -> Registry:
        return default_registry().with_extras({k: v.model_dump() for k, v in self.markers.items()})


def _model_fields_at(model: type[BaseModel], loc: tuple) -> list[str]:
    """The field names valid at `loc` (for a "did you mean" on an unknown key)."""
    current: Any = model
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return []
        field = current.model_fields.get(part)
        if field is None:
            return []
        ann = field.annotation
        args = getattr(ann, "__args__", ())
        current = args[-1] if args and getattr(ann, "__origin__", None) is dict else ann
        if getattr(current, "__origin__", None) is dict:
            current = current.__args__[-1]
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def format_validation_error(err: ValidationError, source: str, model: type[BaseModel], prefix: str = "") -> list[str]:
    lines = []
    for e in err.errors():
        loc = tuple(e["loc"])
        dotted = prefix + ".".join(str(p) for p in loc)
        if e["type"] == "extra_forbidden":
            hint = difflib.get_close_matches(str(loc[-1]), _model_fields_at(model, loc), n=1, cutoff=0.6)
            more = f" (did you mean {hint[0]!r}?)" if hint else ""
            lines.append(f"{source}: unknown key {dotted!r}{more}")
        else:
            lines.append(f"{source}: {dotted}: {e['msg']}")
    return lines


def find_config_file(start: Path) -> tuple[Path, dict] | None:
    """Walk up from `start` to the nearest malmungchi.toml or pyproject.toml with [tool.malmungchi]."""
    here = start.resolve()
    if here.is_file() or not here.exists():
        here = here.parent
    for folder in (here, *here.parents):
        own = folder / "malmungchi.toml"
        if own.is_file():
            return own, _read_toml(own)
        pyproject = folder / "pyproject.toml"
        if pyproject.is_file():
            table = _read_toml(pyproject).get("tool", {}).get("malmungchi")
            if table is not None:
                return pyproject, table
    return None


def _read_toml(path: Path) -> dict:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: not valid TOML: {exc}"]) from None
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror}"]) from None


def load_config(start: Path | None = None, explicit: Path | None = None) -> Config:
    """Load the config from `explicit`, or the nearest file up from `start`, or return the defaults."""
    if explicit is not None:
        if not explicit.is_file():
            raise ConfigError([f"{explicit}: config file not found"])
        data = _read_toml(explicit)
        if explicit.name == "pyproject.toml":
            data = data.get("tool", {}).get("malmungchi", {})
        found: tuple[Path, dict] | None = (explicit, data)
    else:
        found = find_config_file(start or Path.cwd())
    if found is None:
        return Config()
    path, data = found
    prefix = "tool.malmungchi." if path.name == "pyproject.toml" else ""
    try:
        config = Config.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, str(path), Config, prefix)) from None
    try:
        config.registry()
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, str(path), Config, prefix + "markers.")) from None
    return config.model_copy(update={"source": path})
