"""The one markdown-table writer (sweep reports, benchmark results)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd


def markdown_table(df: pd.DataFrame, cell: Callable[[str, Any], str] | None = None) -> str:
    """``df`` as a GitHub markdown table; ``cell(column, value)`` formats each value (default
    ``str``). A ``|`` inside a cell is escaped."""
    fmt = cell or (lambda _col, v: "" if v is None else str(v))
    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "| " + " | ".join("---" for _ in cols) + " |"]
    lines += ["| " + " | ".join(fmt(c, v).replace("|", "\\|") for c, v in
                                zip(cols, row, strict=True)) + " |"
              for row in df.itertuples(index=False)]
    return "\n".join(lines)
