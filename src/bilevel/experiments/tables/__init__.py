"""Paper tables generated from data files (``<name>.yaml`` here): title, caption, columns, rows.

``render(name, fmt)`` returns Markdown (``"md"``) or LaTeX (``"tex"``); the workflow's ``table`` rule
writes both to ``figures/tables/``. A row must have one cell per column (checked).
"""

from __future__ import annotations

from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent


def available() -> list[str]:
    """Names of the table data files."""
    return sorted(p.stem for p in HERE.glob("*.yaml"))


def load(name: str) -> dict:
    """The table's data, checked: every row has one cell per column."""
    path = HERE / f"{name}.yaml"
    if not path.is_file():
        raise KeyError(f"unknown table {name!r}; available: {', '.join(available())}")
    data = yaml.safe_load(path.read_text())
    for i, row in enumerate(data["rows"]):
        if len(row) != len(data["columns"]):
            raise ValueError(f"{path}: row {i} has {len(row)} cells for {len(data['columns'])} columns")
    return data


def _tex_escape(text: str) -> str:
    """Escape LaTeX specials (backslash first, so the escapes themselves are kept)."""
    text = text.replace("\\", r"\textbackslash{}")
    for a, b in (("&", r"\&"), ("%", r"\%"), ("_", r"\_"), ("#", r"\#"), ("^", r"\^{}"), ("~", r"\~{}"), ("$", r"\$")):
        text = text.replace(a, b)
    return text


def render(name: str, fmt: str = "md") -> str:
    """The table ``name`` as Markdown or LaTeX (booktabs)."""
    return render_data(load(name), fmt)


def render_data(data: dict, fmt: str = "md") -> str:
    """A table given as ``{"title", "caption", "columns", "rows"}`` as Markdown or LaTeX (booktabs)."""
    cols, rows = data["columns"], data["rows"]
    if fmt == "md":
        cell = [[str(c).replace("|", "\\|") for c in row] for row in rows]
        lines = [f"# {data['title']}", "", data.get("caption", ""), "", "| " + " | ".join(cols) + " |",
                 "|" + "---|" * len(cols)] + ["| " + " | ".join(r) + " |" for r in cell]
        return "\n".join(lines) + "\n"
    if fmt == "tex":
        body = [" & ".join(_tex_escape(str(c)) for c in row) + r" \\" for row in rows]
        return "\n".join([r"\begin{table}[t]", r"\centering", rf"\caption{{{_tex_escape(data['title'])}. "
                          rf"{_tex_escape(data.get('caption', ''))}}}", r"\begin{tabular}{" + "l" * len(cols) + "}",
                          r"\toprule", " & ".join(_tex_escape(c) for c in cols) + r" \\", r"\midrule", *body,
                          r"\bottomrule", r"\end{tabular}", r"\end{table}"]) + "\n"
    raise ValueError(f"unknown table format {fmt!r}; use md or tex")
