"""Benchmarks whose output is a markdown table (see the README's "Performance" and "Learning
quality")."""


def markdown_table(title: str, columns: list[str], rows: list[list[str]]) -> str:
    """``title``, a blank line, then the table of already formatted cells."""
    import pandas as pd

    from maskcls.analysis.tables import markdown_table as table

    return f"{title}\n\n{table(pd.DataFrame(rows, columns=columns))}"


def publish(table: str, out: str) -> None:
    """Print ``table`` and write it to ``out`` (folders created)."""
    from pathlib import Path

    print("\n" + table)
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(table + "\n")
    print(f"wrote {path}")


def run_python(*args: str) -> float:
    """``python ARGS`` in the project root (a fresh process, as a user runs it); its wall
    seconds, or a RuntimeError with the end of its stderr."""
    import subprocess
    import sys
    import time
    from pathlib import Path

    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, *args], cwd=Path(__file__).resolve().parents[1],
                         capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:3])} failed:\n{res.stderr[-3000:]}")
    return time.perf_counter() - t0
