"""`malmungchi quickstart`: the whole pipeline on the bundled sample, offline, on the CPU, in minutes."""
