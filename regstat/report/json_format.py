"""A Report as its JSON document (`regstat.report/1`)."""

from __future__ import annotations

import json

from ..render import json_array, to_json_value
from .numbers import Report


def render_json(report: Report) -> str:
    """The JSON document, indented, but for `repositories`: one compact row a line (a
    registry has up to millions of repositories; render.json_array)."""
    parts = []
    for key, value in report.to_json().items():
        if key == "repositories":
            text = json_array(value, indent=" ")
        else:
            text = json.dumps(to_json_value(value), indent=1).replace("\n", "\n ")  # one level in
        parts.append(f" {json.dumps(key)}: {text}")
    return "{\n" + ",\n".join(parts) + "\n}\n"
