"""Rich tables that fit the console without losing a character of any value.

Left to itself, rich fits a table that is too wide by shrinking its widest columns first, whatever they hold: at
80 columns (any output that is not a terminal) a marker name became `START_OF_…` and a confidence interval
`5.0…`. Here no cell is ever cut: a column is never narrower than its longest word (headers and cells with spaces
wrap at them), the room left is shared out from there, and a table whose columns cannot all fit even so is printed
as several, as few as it takes for every column to fit unwrapped, each repeating the key columns (the first
`keys`: what names a row), the others shared out over them as evenly as fits.
"""

from __future__ import annotations

from itertools import combinations

from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text

PADDING = 2  # a column's padding, one space each side
RULE = 1  # the line between two columns (show_edge=False: none outside)


def _widths(cells: list[str]) -> tuple[int, int]:
    """(longest word, longest line) of a column's header and cells, in terminal cells."""
    words = [cell_len(w) for c in cells for w in c.split()] or [0]
    lines = [cell_len(x) for c in cells for x in c.splitlines()] or [0]
    return max(words), max(lines)


def _room(n: int, width: int) -> int:
    """The cells left for the columns' text in a table of `n` columns printed `width` wide."""
    return width - n * PADDING - (n - 1) * RULE


def _share(lo: list[int], hi: list[int], room: int) -> list[int]:
    """Each column's width, from its minimum toward its maximum: the room left goes to the columns that need least
    more first, so as many as can are shown on one line each. Where even the minimums do not fit (one word wider
    than the console), the widest columns give way first, folding that word, down to one cell each."""
    out = list(lo)
    left = room - sum(lo)
    for i in sorted(range(len(lo)), key=lambda i: hi[i] - lo[i]):
        more = min(hi[i] - lo[i], max(0, left))
        out[i] += more
        left -= more
    while left < 0 and max(out, default=1) > 1:
        widest = max(range(len(out)), key=lambda i: out[i])
        out[widest] -= 1
        left += 1
    return [max(1, w) for w in out]


def _groups(hi: list[int], keys: int, width: int) -> list[list[int]]:
    """The columns of each table to print: the key columns and, in order, as many of the rest as fit on one line
    each (at least one: it wraps where it must), in as few tables as that takes, shared out over those tables as
    evenly as fits (no last table of one column where it can be helped)."""
    base = list(range(keys))
    greedy: list[list[int]] = [list(base)]
    for i in range(keys, len(hi)):
        trial = greedy[-1] + [i]
        if len(greedy[-1]) > keys and sum(hi[j] for j in trial) > _room(len(trial), width):
            greedy.append(base + [i])
        else:
            greedy[-1] = trial
    rest, k = list(range(keys, len(hi))), len(greedy)
    best, spread = greedy, None
    ways = combinations(range(1, len(rest)), k - 1) if len(rest) <= 20 else ()  # into k parts, in order
    for cuts in ways:
        parts = [base + rest[a:b] for a, b in zip((0, *cuts), (*cuts, len(rest)))]
        if all(sum(hi[j] for j in g) <= _room(len(g), width) for g in parts):
            sizes = [len(g) for g in parts]
            if spread is None or max(sizes) - min(sizes) < spread:
                best, spread = parts, max(sizes) - min(sizes)
    return best


def fitted(title: str | None, headers: list[str], rows: list[list], width: int, *, left: tuple[str, ...] = (),
           keys: int = 1, title_justify: str = "center") -> list[Table]:
    """The table (`headers`, `rows` of values, each printed as `str` of it, never read as markup; columns named in
    `left` justified left, the rest right) as one or more rich Tables no wider than `width`, no cell cut (a word
    wider than the whole console is folded onto the next line, never replaced by `…`)."""
    rows = [[str(c) for c in r] for r in rows]
    cols = [_widths([h, *(r[i] for r in rows)]) for i, h in enumerate(headers)]
    lo, hi = [c[0] for c in cols], [c[1] for c in cols]
    groups = [list(range(len(headers)))] if sum(lo) <= _room(len(headers), width) else \
        _groups(hi, min(keys, len(headers)), width)
    tables = []
    for n, group in enumerate(groups):
        sizes = _share([lo[i] for i in group], [hi[i] for i in group], _room(len(group), width))
        name = title if len(groups) == 1 or title is None else f"{title} ({n + 1}/{len(groups)})"
        t = Table(title=name, show_edge=False, title_justify=title_justify)  # the overhead _room counts
        for i, size in zip(group, sizes):
            # fold, not rich's default ellipsis: a wrapped line of double-width Hangul that fills its column exactly
            # would otherwise end in "…"
            t.add_column(headers[i], justify="left" if headers[i] in left else "right", width=size,
                         overflow="fold")
        for r in rows:
            t.add_row(*(Text(r[i]) for i in group))
        tables.append(t)
    return tables


def print_fitted(console: Console, title: str | None, headers: list[str], rows: list[list[str]], **kw) -> None:
    """`fitted` to the console's width, printed."""
    for t in fitted(title, headers, rows, console.width, **kw):
        console.print(t)
