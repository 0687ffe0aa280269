"""docs/operations.md lists every setting with its default (deploy/settings_doc.py)."""

from __future__ import annotations

import pytest

from deploy import settings_doc
from shared.settings import Settings


def test_the_settings_table_in_docs_operations_is_up_to_date() -> None:
    document = settings_doc.DOC.read_text(encoding="utf-8")
    assert settings_doc.updated(document) == document, (
        "docs/operations.md is stale: run `.venv/bin/python -m deploy.settings_doc`"
    )


def test_the_table_has_every_setting_with_its_default() -> None:
    table = settings_doc.render()
    for name, field in Settings.model_fields.items():
        assert f"| `FLOWCRON_{name.upper()}` |" in table
        default = field.get_default()
        shown = "(empty)" if default == "" else f"`{default}`".replace(".0`", "`")
        assert f"| `FLOWCRON_{name.upper()}` | {shown} |" in table


def test_a_document_without_markers_is_refused() -> None:
    with pytest.raises(ValueError, match="settings:begin"):
        settings_doc.updated("# no table here\n")
