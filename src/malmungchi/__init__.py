"""malmungchi: hand-marked Korean book and dialogue text to a fine-tuned, evaluated model."""

__version__ = "0.1.0"
