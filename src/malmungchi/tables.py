"""Rich tables that fit the console without losing a character of any value.

Left to itself, rich fits a table that is too wide by shrinking its widest columns first, whatever they hold: at
80 columns (any output that is not a terminal) a marker name became `START_OF_…` and a confidence interval
`5.0…`. Here no cell is ever cut: a column is never narrower than its longest word (headers and cells with spaces
wrap at them: an id or a path stays whole, to be copied), the room left goes where it saves the most wrapped
lines, and a table whose columns cannot all fit even so is printed as several, as few as it
takes for every column to fit unwrapped, each repeating the key columns (the first `keys`: what names a row), the
others shared out over them as evenly as fits."""

from __future__ import annotations

from itertools import combinations

import numpy as np
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


def _lines(cell: str, width: int) -> int:
    """The lines `cell` takes wrapped at spaces into `width` cells (a longer word folded), as rich wraps it."""
    parts = cell.splitlines() or [""]
    if all(cell_len(x) <= width for x in parts):
        return len(parts)
    n = 0
    for line in parts:
        used = 0
        n += 1
        for w in map(cell_len, line.split()):
            if used and used + 1 + w <= width:
                used += 1 + w
                continue
            if used:
                n += 1
            n += (w - 1) // width if w else 0
            used = (w - 1) % width + 1 if w else 0
    return n


def _share(lo: list[int], hi: list[int], room: int, cells: list[list[str]], keys: int = 0) -> list[int]:
    """Each column's width, from its minimum (at least 1) toward its maximum, so that the table takes as few lines
    as it can (`cells`: each column's header and cells, row by row; a row is as tall as its tallest cell; a line a
    row's name wraps onto, in the first `keys` columns, counts as a line more), and of tables as tall, the one whose
    cells wrap least. The room goes first where it saves the most per cell of width, then is moved between pairs of
    columns while that saves more (a column of many wrapped labels gets it before one long value). Where even the
    minimums do not fit (one word wider than the console), the widest columns give way first, folding that word,
    down to one cell each, and may then give more (they fold anyway) where it saves lines elsewhere."""
    out = [max(1, x) for x in lo]
    base = list(out)  # the narrowest each column may be made
    left = room - sum(out)
    while left < 0 and max(out, default=1) > 1:
        widest = max(range(len(out)), key=lambda i: out[i])
        out[widest] -= 1
        base[widest] = 1  # it folds its longest word anyway: it may give more room to columns that then wrap less
        left += 1
    if left < 0:
        return out  # narrower than one cell a column
    slack = left + sum(o - b for o, b in zip(out, base))
    top = [max(o, min(h, o + slack)) for o, h in zip(out, hi)]
    # lines[i][w - base[i]][r]: row r's lines in column i at width w, for every width column i may get
    lines = [np.array([[_lines(c, w) for c in col] for w in range(b, t + 1)], dtype=np.int64)
             for col, b, t in zip(cells, base, top)]
    rows = len(cells[0]) if cells else 0
    weight = int(sum(x.max(axis=0).sum() for x in lines)) + 1  # a row's line outweighs all the cells' lines

    def cost(widths: dict[int, np.ndarray]) -> np.ndarray:
        """The table's cost with column i at each of the widths `widths[i]` (one array of candidates, the rest
        as they are): row heights first, then the cells' lines."""
        n = max(len(w) for w in widths.values())
        tall = np.zeros((n, rows), dtype=np.int64)
        cell_sum = np.zeros(n, dtype=np.int64)
        named = np.zeros(n, dtype=np.int64)  # the lines the rows' names wrap onto
        for i in range(len(out)):
            got = lines[i][widths[i] - base[i]] if i in widths else np.broadcast_to(lines[i][out[i] - base[i]],
                                                                                  (n, rows))
            tall = np.maximum(tall, got)
            cell_sum += got.sum(axis=1)
            if i < keys:
                named += got.sum(axis=1) - rows
        return (tall.sum(axis=1) + named) * weight + cell_sum

    now = int(cost({0: np.array([out[0]])})[0]) if out else 0
    while left > 0:  # greedy: the widening that saves the most per cell of width
        best = (0.0, 0, 0, now)
        for i in range(len(out)):
            if out[i] >= top[i]:
                continue
            ws = np.arange(out[i] + 1, min(top[i], out[i] + left) + 1)
            costs = cost({i: ws})
            rate = (now - costs) / (ws - out[i])
            k = int(np.argmax(rate))
            if rate[k] > best[0]:
                best = (float(rate[k]), i, int(ws[k]), int(costs[k]))
        if not best[0]:
            break
        _, i, w, now = best
        left -= w - out[i]
        out[i] = w
    for _ in range(4 * len(out)):  # then room moved from one column to another while that saves more
        move = None
        for i in range(len(out)):
            for j in range(len(out)):
                if i == j or out[j] <= base[j] or out[i] >= top[i]:
                    continue
                d = np.arange(1, min(out[j] - base[j], top[i] - out[i]) + 1)
                costs = cost({i: out[i] + d, j: out[j] - d})
                k = int(np.argmin(costs))
                if costs[k] < now and (move is None or costs[k] < move[0]):
                    move = (int(costs[k]), i, j, int(d[k]))
        if move is None:
            break
        now, i, j, d = move
        out[i] += d
        out[j] -= d
    return out


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


def fitted(title: str | None, headers: list[str], rows: list[list | None], width: int, *,
           left: tuple[str, ...] = (), keys: int = 1, title_justify: str = "center", caption: str | None = None,
           show_header: bool = True) -> list[Table]:
    """The table (`headers`, `rows` of values, each printed as `str` of it, never read as markup, or as the styled
    `Text` it is; a row None draws a line between the rows around it; columns named in `left` justified left, the
    rest right) as one or more rich Tables no wider than `width`, no cell cut (a word wider than the whole console
    is folded onto the next line, never replaced by `…`). `caption` goes under the last of them."""
    bad = [r for r in rows if r is not None and len(r) != len(headers)]
    if bad:
        raise ValueError(f"table {title!r}: a row of {len(bad[0])} cells under {len(headers)} headers")
    cells = [None if r is None else [c if isinstance(c, Text) else Text(str(c)) for c in r] for r in rows]
    plain = [r for r in cells if r is not None]
    shown = headers if show_header else [""] * len(headers)
    cols = [_widths([h, *(r[i].plain for r in plain)]) for i, h in enumerate(shown)]
    lo, hi = [c[0] for c in cols], [c[1] for c in cols]
    groups = [list(range(len(headers)))] if sum(lo) <= _room(len(headers), width) else \
        _groups(hi, min(keys, len(headers)), width)
    tables = []
    for n, group in enumerate(groups):
        sizes = _share([lo[i] for i in group], [hi[i] for i in group], _room(len(group), width),
                       [[shown[i], *(r[i].plain for r in plain)] for i in group], keys=min(keys, len(group)))
        name = title if len(groups) == 1 or title is None else f"{title} ({n + 1}/{len(groups)})"
        t = Table(title=None if name is None else Text(name),  # a path in it is text, not markup
                  show_edge=False, title_justify=title_justify,  # the overhead _room counts
                  show_header=show_header)
        for i, size in zip(group, sizes):
            # fold, not rich's default ellipsis: a wrapped line of double-width Hangul that fills its column exactly
            # would otherwise end in "…"
            t.add_column(headers[i], justify="left" if headers[i] in left else "right", width=size,
                         overflow="fold")
        for r in cells:
            if r is None:
                t.add_section()
            else:
                t.add_row(*(r[i].copy() for i in group))
        tables.append(t)
    if caption:
        tables[-1].caption, tables[-1].caption_justify = Text(caption), "left"
    return tables


class Fitted:
    """`fitted` as a rich renderable: the split is made for the width it is printed at (`console.print(it)`)."""

    def __init__(self, title: str | None, headers: list[str], rows: list[list | None] | None = None, **kw):
        self.title, self.headers, self.rows, self.kw = title, headers, list(rows or []), kw

    def add_row(self, *cells) -> None:
        self.rows.append(list(cells))

    def add_section(self) -> None:
        self.rows.append(None)

    def __rich_console__(self, console: Console, options):
        yield from fitted(self.title, self.headers, self.rows, options.max_width, **self.kw)


def print_fitted(console: Console, title: str | None, headers: list[str], rows: list[list[str]], **kw) -> None:
    """`fitted` to the console's width, printed."""
    for t in fitted(title, headers, rows, console.width, **kw):
        console.print(t)
