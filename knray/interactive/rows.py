"""Tabular results: a list of dicts that notebooks show as a table and pandas reads as is."""

from __future__ import annotations

import html
from typing import Any

__all__ = ["Rows"]


class Rows(list[dict[str, Any]]):
    """Rows of a table, each a dict of column -> value (``pandas.DataFrame(rows)`` works).

    Jupyter shows it as an HTML table; :meth:`to_pandas` makes a DataFrame when pandas is
    installed (``pip install 'knray[notebook]'``).
    """

    @property
    def columns(self) -> list[str]:
        """Every column, in first-seen order."""
        seen: dict[str, None] = {}
        for row in self:
            seen.update(dict.fromkeys(row))
        return list(seen)

    def to_pandas(self) -> Any:
        """A ``pandas.DataFrame`` of the rows (columns in first-seen order)."""
        try:
            import pandas  # noqa: PLC0415 - optional, for notebooks
        except ImportError as error:
            raise ImportError(
                "to_pandas() needs pandas: pip install 'knray[notebook]' (or pandas)"
            ) from error
        return pandas.DataFrame(list(self), columns=self.columns)

    def _repr_html_(self) -> str:
        columns = self.columns
        head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
        body = "".join(
            "<tr>" + "".join(f"<td>{_cell(row.get(c))}</td>" for c in columns) + "</tr>"
            for row in self
        )
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".")
    return html.escape(str(value))
