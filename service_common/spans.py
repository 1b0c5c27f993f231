"""Spans of the steps of a use case (a command's submit, each agent start, a poll...), through
the OpenTelemetry API alone: no-ops until the program installs a TracerProvider (tracing.py)."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from opentelemetry import trace
from opentelemetry.util.types import AttributeValue

F = TypeVar("F", bound=Callable[..., Any])


def attribute(value: Any) -> AttributeValue:
    """A span attribute's value: a scalar as it is, the keys of a mapping or the items of a
    collection as a list of strings, anything else as its text."""
    if isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, Mapping | list | tuple | set | frozenset):
        return [str(item) for item in value]
    return str(value)


def annotate(key: str, value: Any) -> None:
    """Set an attribute of the current span (nothing outside one)."""
    trace.get_current_span().set_attribute(key, attribute(value))


def spanned(
    name: str, result: str | None = None, arguments: Mapping[str, str] | None = None
) -> Callable[[F], F]:
    """A decorator: each call of the function in a span `name` (a child of the current one),
    with the attribute `result` set to what it returns, and each attribute of `arguments`
    (attribute name: argument name) set to that argument."""

    def decorate(function: F) -> F:
        signature = inspect.signature(function)
        tracer = trace.get_tracer(function.__module__)

        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with tracer.start_as_current_span(name) as span:
                if arguments:
                    bound = signature.bind(*args, **kwargs).arguments
                    for key, argument in arguments.items():
                        if argument in bound:
                            span.set_attribute(key, attribute(bound[argument]))
                returned = function(*args, **kwargs)
                if result is not None and returned is not None:
                    span.set_attribute(result, attribute(returned))
                return returned

        return wrapper  # type: ignore[return-value]

    return decorate
