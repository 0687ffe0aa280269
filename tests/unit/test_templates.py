"""Templates: native types, string rendering, clear errors, the sandbox."""

from __future__ import annotations

import pytest

from services.executor.templates import TemplateError, evaluate, render, template_context

CONTEXT = template_context(
    run_input={"ids": [1, 2, 3], "base_url": "http://x", "n": 4},
    nodes={
        "fetch": {"output": {"status": 200, "body": {"items": ["a", "b"]}}, "status": "succeeded"}
    },
    run={"id": "r1", "trigger": "manual", "scheduled_for": None, "attempt": 1, "workflow_id": "w"},
)


def test_a_single_expression_keeps_its_type() -> None:
    assert render("{{ input.ids }}", CONTEXT, node_id="n") == [1, 2, 3]
    assert render("  {{ input.n * 2 }} ", CONTEXT, node_id="n") == 8
    assert render("{{ nodes.fetch.output.status == 200 }}", CONTEXT, node_id="n") is True
    assert render("{{ nodes.fetch.output.body }}", CONTEXT, node_id="n") == {"items": ["a", "b"]}


def test_other_strings_render_to_strings() -> None:
    assert render("{{ input.base_url }}/events", CONTEXT, node_id="n") == "http://x/events"
    assert render("{{ input.n }}{{ input.n }}", CONTEXT, node_id="n") == "44"
    assert (
        render("{{ nodes.fetch.output.body['items'] | length }} events", CONTEXT, node_id="n")
        == "2 events"
    )
    assert render("plain", CONTEXT, node_id="n") == "plain"


def test_dicts_and_lists_render_recursively_and_keep_other_values() -> None:
    config = {"url": "{{ input.base_url }}", "retry": 3, "tags": ["{{ run.trigger }}", True]}
    assert render(config, CONTEXT, node_id="n") == {
        "url": "http://x",
        "retry": 3,
        "tags": ["manual", True],
    }


def test_an_undefined_name_names_node_field_and_expression() -> None:
    with pytest.raises(TemplateError) as caught:
        render({"url": "{{ input.missing }}/x"}, CONTEXT, node_id="fetch")
    message = str(caught.value)
    assert "'fetch'" in message
    assert "config.url" in message
    assert "{{ input.missing }}/x" in message
    assert "missing" in message
    assert caught.value.retryable is False


def test_an_undefined_native_value_fails_too() -> None:
    with pytest.raises(TemplateError, match=r"config\.headers\.X.*nodes\.later"):
        render({"headers": {"X": "{{ nodes.later.output }}"}}, CONTEXT, node_id="n")
    with pytest.raises(TemplateError, match=r"config\.items"):
        render({"items": ["{{ input.nope }}"]}, CONTEXT, node_id="n")


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ input.__class__ }}",
        "x {{ cycler.__init__.__globals__ }}",
        "{{ ().__class__.__base__.__subclasses__() }}",
    ],
)
def test_a_sandbox_escape_is_refused(source: str) -> None:
    with pytest.raises(TemplateError, match=r"refused by the sandbox|undefined|unsafe"):
        render({"v": source}, CONTEXT, node_id="n")


def test_syntax_errors_are_template_errors() -> None:
    with pytest.raises(TemplateError, match=r"'n': config.v"):
        render({"v": "{{ input. }}"}, CONTEXT, node_id="n")


def test_evaluate_takes_bare_or_braced_expressions() -> None:
    assert evaluate("nodes.fetch.output.status == 200", CONTEXT, node_id="c", path="p") is True
    assert evaluate("{{ input.n > 10 }}", CONTEXT, node_id="c", path="p") is False
    with pytest.raises(TemplateError, match=r"config\.expression"):
        evaluate("1 / 0", CONTEXT, node_id="c", path="config.expression")
