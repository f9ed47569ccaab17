"""The directories the stages hand to each other (docs/DESIGN.md), each owned by one module here.

- `build`: the build directory (stage 2 → 3): its names, recognising one, reading and checking it;
- `run`: the run directory (stage 3 → 4): its names and recognising one.

Every stage spells these files through this package only, so a name changes in one place.
"""
