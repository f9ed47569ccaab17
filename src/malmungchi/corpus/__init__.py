"""Stage 1: read marker text, lint it, and parse it into the document tree."""

from malmungchi.corpus.diagnostics import Diagnostic, Severity
from malmungchi.corpus.parse import parse_text
from malmungchi.corpus.tree import Block, Cue, Dialogue, Document, Narration, Sound, Span, Text, Turn

__all__ = [
    "Block",
    "Cue",
    "Diagnostic",
    "Dialogue",
    "Document",
    "Narration",
    "Severity",
    "Sound",
    "Span",
    "Text",
    "Turn",
    "parse_text",
]
