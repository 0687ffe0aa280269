"""``{{ … }}`` templates in node configs, rendered in Jinja2's sandbox.

Contract:

* Every string anywhere in a config (dict values and list items, recursively) is a
  template. Dict keys and non-string leaves are kept as they are.
* A string that is exactly one ``{{ expr }}`` (surrounding blanks allowed) keeps the
  type of ``expr``: ``"{{ input.ids }}"`` gives a list, ``"{{ 2 * 3 }}"`` the number 6.
  Any other string renders to a string.
* Names that do not exist fail (``StrictUndefined``): the :class:`TemplateError` names
  the node, the field path (``config.headers.Authorization``) and the template.
* The sandbox refuses unsafe attributes (``__class__``, ``__globals__`` …): the step
  fails before its action runs.

The context a node sees is built by :func:`template_context`: ``input`` (the run's
input), ``nodes`` (``nodes.<id>.output`` and ``nodes.<id>.status`` of every node that
has finished), ``run`` (``id``, ``trigger``, ``scheduled_for`` as ISO 8601 or None,
``attempt``, ``workflow_id``), ``secrets`` (the organization's secrets by name) and,
inside a loop body, ``loop`` (``item``, ``index``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from services.executor.errors import StepError

_SINGLE_EXPRESSION = re.compile(r"^\s*\{\{(?P<expr>.*?)\}\}\s*$", re.DOTALL)

_ENV = SandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False)


class TemplateError(StepError):
    """A template failed to compile or to evaluate; retrying cannot change that."""

    retryable = False


def template_context(
    *,
    run_input: Any,
    nodes: Mapping[str, Mapping[str, Any]],
    run: Mapping[str, Any],
    secrets: Mapping[str, str] | None = None,
    loop: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The names templates see (see the module docstring)."""
    context = {"input": run_input, "nodes": dict(nodes), "run": dict(run)}
    context["secrets"] = dict(secrets or {})
    if loop is not None:
        context["loop"] = dict(loop)
    return context


def render(value: Any, context: Mapping[str, Any], *, node_id: str, path: str = "config") -> Any:
    """Render every template inside ``value``; see the module docstring for the rules.

    Raises:
        TemplateError: naming ``node_id``, the field path and the failing template.
    """
    if isinstance(value, str):
        return _render_string(value, context, node_id=node_id, path=path)
    if isinstance(value, Mapping):
        return {
            key: render(item, context, node_id=node_id, path=f"{path}.{key}")
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [
            render(item, context, node_id=node_id, path=f"{path}[{i}]")
            for i, item in enumerate(value)
        ]
    return value


def evaluate(expression: str, context: Mapping[str, Any], *, node_id: str, path: str) -> Any:
    """Evaluate one expression (with or without its ``{{ }}``) to a native value."""
    match = _SINGLE_EXPRESSION.match(expression)
    source = match.group("expr") if match and _is_single(match) else expression
    return _run(lambda: _native(_expression(source)(**context)), expression, node_id, path)


def _render_string(text: str, context: Mapping[str, Any], *, node_id: str, path: str) -> Any:
    if "{{" not in text and "{%" not in text:
        return text
    match = _SINGLE_EXPRESSION.match(text)
    if match and _is_single(match):
        source = match.group("expr")
        return _run(lambda: _native(_expression(source)(**context)), text, node_id, path)
    return _run(lambda: _template(text).render(**context), text, node_id, path)


def _is_single(match: re.Match[str]) -> bool:
    # "{{ a }} and {{ b }}" also matches the pattern; it is two expressions, a string.
    inner = match.group("expr")
    return "{{" not in inner and "}}" not in inner


def _run(produce: Callable[[], Any], source: str, node_id: str, path: str) -> Any:
    try:
        return produce()
    except jinja2.exceptions.SecurityError as exc:
        raise TemplateError(
            f"node {node_id!r}: {path}: template {source!r} refused by the sandbox: {exc}"
        ) from None
    except jinja2.TemplateError as exc:
        raise TemplateError(f"node {node_id!r}: {path}: template {source!r}: {exc}") from None
    except Exception as exc:  # noqa: BLE001  # e.g. 1/0 or a bad comparison inside the template
        raise TemplateError(
            f"node {node_id!r}: {path}: template {source!r}: {type(exc).__name__}: {exc}"
        ) from None


def _native(value: Any) -> Any:
    """Fail on undefined values anywhere in a native result, as rendering would."""
    if isinstance(value, jinja2.Undefined):
        str(value)  # raises the UndefinedError (or SecurityError) it stands for
    elif isinstance(value, Mapping):
        for item in value.values():
            _native(item)
    elif isinstance(value, list | tuple):
        for item in value:
            _native(item)
    return value


@lru_cache(maxsize=1024)
def _expression(source: str) -> Any:
    return _ENV.compile_expression(source, undefined_to_none=False)


@lru_cache(maxsize=1024)
def _template(source: str) -> jinja2.Template:
    return _ENV.from_string(source)
