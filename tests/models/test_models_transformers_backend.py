"""The transformers backend's stop-string search (no model)."""

from __future__ import annotations

import pytest

from models.transformers_backend import _first_stop


@pytest.mark.parametrize(
    ("text", "stops", "expected"),
    [("a\n\nb", ("\n\n",), (1, "\n\n")), ("abc", ("x",), None), ("a.b\n\n", ("\n\n", "."), (1, ".")),
     ("", ("\n\n",), None)],
)
def test_first_stop(text, stops, expected):
    assert _first_stop(text, stops) == expected
