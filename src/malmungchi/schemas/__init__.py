"""Pydantic models for the marker registry and every stage's configuration."""

from malmungchi.schemas.config import Config, ConfigError, LintConfig, load_config
from malmungchi.schemas.registry import MarkerKind, MarkerSpec, Registry, default_registry

__all__ = [
    "Config",
    "ConfigError",
    "LintConfig",
    "MarkerKind",
    "MarkerSpec",
    "Registry",
    "default_registry",
    "load_config",
]
