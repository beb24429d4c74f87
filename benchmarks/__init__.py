"""Benchmarks whose output is a markdown table (see the README's "Performance" and "Learning
quality")."""


def markdown_table(title: str, columns: list[str], rows: list[list[str]]) -> str:
    """``title``, a blank line, then the table of already formatted cells."""
    import pandas as pd

    from maskcls.tables import markdown_table as table

    return f"{title}\n\n{table(pd.DataFrame(rows, columns=columns))}"


def publish(table: str, out: str) -> None:
    """Print ``table`` and write it to ``out`` (folders created)."""
    from pathlib import Path

    print("\n" + table)
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(table + "\n")
    print(f"wrote {path}")
