"""Handlers: the Python code a Knative Service runs, loaded from ``package.module:attr``.

A handler is a function, or a class instantiated once per replica whose instances are
callable, taking one CloudEvent and returning None or a reply CloudEvent, sync or async. A batch
handler (marked with :func:`batch_handler`) takes a list of events and returns one result per
event: None, a reply CloudEvent, or an Exception instance meaning that event alone failed.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import inspect
import json
import re
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from knray.broker.outcome import SubscriberResponse
from knray.errors import KnrayError
from knray.events import CloudEvent
from knray.manifests.annotations import HANDLER_ANNOTATION
from knray.manifests.service import KnativeService

__all__ = [
    "EVENT_DISPLAY_HANDLER",
    "MAIN_MODULE",
    "BatchOptions",
    "HandlerLoadError",
    "LoadedHandler",
    "batch_handler",
    "builtin_handler_for_image",
    "event_display",
    "format_event_display",
    "handler_from_object",
    "handler_spec_for_service",
    "import_handler_target",
    "load_handler",
    "response_for_result",
]

EVENT_DISPLAY_HANDLER: Final = "knray.serving.handlers:event_display"
# Handlers defined in the main module (a script, a notebook) are shipped to replicas by value.
MAIN_MODULE: Final = "__main__"
_BUILTIN_IMAGES: Final = {
    "event-display": EVENT_DISPLAY_HANDLER,
    "event_display": EVENT_DISPLAY_HANDLER,
}
_BATCH_ATTRIBUTE: Final = "__knray_batch__"
_SPEC: Final = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*")

F = TypeVar("F")


class HandlerLoadError(KnrayError, ValueError):
    """A Service's handler cannot be loaded: bad name, missing module or attribute, or
    wrong signature. The message names the Service and the annotation."""


@dataclass(frozen=True)
class BatchOptions:
    """How a batch handler is fed: at most ``max_batch_size`` events per call, waiting up to
    ``batch_wait_timeout_s`` for a batch to fill."""

    max_batch_size: int = 16
    batch_wait_timeout_s: float = 0.01


def batch_handler(
    *, max_batch_size: int = 16, batch_wait_timeout_s: float = 0.01
) -> Callable[[F], F]:
    """Mark a function or class as a batch handler: ``list[CloudEvent] -> list[result]``."""
    if max_batch_size < 1:
        raise ValueError("max_batch_size must be at least 1")
    if batch_wait_timeout_s < 0:
        raise ValueError("batch_wait_timeout_s must not be negative")
    options = BatchOptions(max_batch_size, batch_wait_timeout_s)

    def mark(target: F) -> F:
        setattr(target, _BATCH_ATTRIBUTE, options)
        return target

    return mark


def _is_async(function: Any) -> bool:
    if inspect.iscoroutinefunction(function):
        return True
    call = getattr(type(function), "__call__", None)  # noqa: B004
    return not inspect.isfunction(function) and inspect.iscoroutinefunction(call)


@dataclass(frozen=True)
class LoadedHandler:
    """A loaded handler: the callable (function or per-replica instance) and how to call it."""

    spec: str
    function: Callable[..., Any]
    is_async: bool
    batch: BatchOptions | None = None

    async def call(self, argument: Any, executor: Executor | None = None) -> Any:
        """Call with one event (or a list for a batch handler); sync code runs in a thread."""
        if self.is_async:
            return await self.function(argument)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(executor, self.function, argument)


def _error(service: str, spec: str, problem: str) -> HandlerLoadError:
    return HandlerLoadError(
        f"Service {service}: annotation {HANDLER_ANNOTATION}={spec!r}: {problem}"
    )


def load_handler(
    spec: str, *, service: str = "<unnamed>", instantiate: bool = True
) -> LoadedHandler:
    """Import ``package.module:attr`` (from the current directory and PYTHONPATH) and check it.

    Classes are instantiated (no arguments) once per call of this function, i.e. per replica;
    with ``instantiate=False`` only their ``__call__`` is checked (a cheap validation).
    Raises HandlerLoadError naming the Service and the annotation.
    """
    target = import_handler_target(spec, service=service)
    return handler_from_object(target, spec=spec, service=service, instantiate=instantiate)


def import_handler_target(spec: str, *, service: str = "<unnamed>") -> Any:
    """The function or class ``package.module:attr`` names, imported but not checked.

    ``__main__:attr`` is this process's main module: a script or a notebook's kernel.
    """
    if not _SPEC.fullmatch(spec):
        raise _error(service, spec, "expected 'package.module:attribute'")
    module_name, _, attribute = spec.partition(":")
    if "" not in sys.path:
        sys.path.insert(0, "")  # the current directory, as `python -m` does
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        raise _error(service, spec, f"module {error.name!r} not found") from error
    except Exception as error:
        raise _error(
            service, spec, f"importing {module_name!r} failed: {type(error).__name__}: {error}"
        ) from error
    target: Any = module
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise _error(
                service, spec, f"module {module_name!r} has no attribute {attribute!r}"
            ) from None
    return target


def handler_from_object(
    target: Any, *, spec: str | None = None, service: str = "<unnamed>", instantiate: bool = True
) -> LoadedHandler:
    """Check a handler function or class given as an object (e.g. shipped to a replica by
    value) and load it as :func:`load_handler` does; ``spec`` names it in messages."""
    if spec is None:
        name = getattr(target, "__qualname__", type(target).__name__)
        spec = f"{getattr(target, '__module__', '?')}:{name}"
    attribute = spec.partition(":")[2]
    batch: BatchOptions | None = getattr(target, _BATCH_ATTRIBUTE, None)
    if inspect.isclass(target):
        try:
            inspect.signature(target).bind()
        except (TypeError, ValueError):
            raise _error(
                service, spec, "a handler class must be constructible without arguments"
            ) from None
        if not instantiate:
            call = getattr(target, "__call__", None)  # noqa: B004
            if not inspect.isfunction(call):
                raise _error(service, spec, f"class {attribute} does not define __call__")
            batch = batch or getattr(call, _BATCH_ATTRIBUTE, None)
            _check_signature(service, spec, attribute, functools.partial(call, None), batch)
            return LoadedHandler(spec, call, inspect.iscoroutinefunction(call), batch)
        try:
            instance = target()
        except Exception as error:
            raise _error(
                service, spec, f"creating {attribute} failed: {type(error).__name__}: {error}"
            ) from error
        if not callable(instance):
            raise _error(
                service, spec, f"instances of {attribute} are not callable (define __call__)"
            )
        function: Callable[..., Any] = instance
        batch = batch or getattr(type(instance).__call__, _BATCH_ATTRIBUTE, None)
    elif callable(target):
        function = target
    else:
        raise _error(
            service, spec, f"{attribute} is a {type(target).__name__}, not a function or class"
        )
    _check_signature(service, spec, attribute, function, batch)
    return LoadedHandler(spec=spec, function=function, is_async=_is_async(function), batch=batch)


def _check_signature(
    service: str, spec: str, attribute: str, function: Any, batch: BatchOptions | None
) -> None:
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        return
    try:
        signature.bind(object())
    except TypeError:
        what = "a list of CloudEvents" if batch else "a CloudEvent"
        raise _error(
            service,
            spec,
            f"wrong signature {attribute}{signature}: it must take one argument, {what}",
        ) from None


def builtin_handler_for_image(image: str | None) -> str | None:
    """The built-in handler for a known container image (e.g. Knative's event-display)."""
    if not image:
        return None
    path = image.split("@", 1)[0]
    last = path.rsplit("/", 1)[-1]
    name = last.split(":", 1)[0]
    return _BUILTIN_IMAGES.get(name)


def handler_spec_for_service(service: KnativeService) -> str:
    """The handler of a Service: its ``knray.dev/handler`` annotation, else a built-in for
    its image; HandlerLoadError when it has neither."""
    for found in (service.spec.template.metadata.annotations, service.annotations):
        spec = found.get(HANDLER_ANNOTATION)
        if spec:
            return spec
    builtin = builtin_handler_for_image(service.image)
    if builtin:
        return builtin
    raise HandlerLoadError(
        f"Service {service.namespace}/{service.name}: no handler: set the {HANDLER_ANNOTATION} "
        f"annotation to 'package.module:attribute' (image {service.image!r} is not a known "
        "built-in such as event-display)"
    )


def response_for_result(result: Any) -> SubscriberResponse:
    """Map a handler's result for one event to a response: None or a CloudEvent -> 200,
    an Exception -> 500 with its text, anything else -> 500 naming the type."""
    if result is None:
        return SubscriberResponse(code=200)
    if isinstance(result, CloudEvent):
        return SubscriberResponse(code=200, reply=result)
    if isinstance(result, BaseException):
        return SubscriberResponse(code=500, error=f"{type(result).__name__}: {result}")
    if hasattr(result, "get_attributes") and hasattr(result, "get_data"):
        try:
            return SubscriberResponse(code=200, reply=CloudEvent.from_sdk(result))
        except Exception as error:
            return SubscriberResponse(code=500, error=f"invalid reply event: {error}")
    return SubscriberResponse(
        code=500, error=f"handler returned {type(result).__name__}; expected None or a CloudEvent"
    )


def format_event_display(event: CloudEvent) -> str:
    """The text Knative's event-display prints for an event (the Go SDK's Event.String())."""
    attributes = event.get_attributes()
    lines = ["☁️  cloudevents.Event", "Context Attributes,"]
    for name in (
        "specversion",
        "type",
        "source",
        "subject",
        "id",
        "time",
        "dataschema",
        "datacontenttype",
    ):
        value = attributes.get(name)
        if value is not None:
            text = (
                value.isoformat().replace("+00:00", "Z") if hasattr(value, "isoformat") else value
            )
            lines.append(f"  {name}: {text}")
    extensions = sorted(name for name in attributes if name not in _CONTEXT)
    if extensions:
        lines.append("Extensions,")
        lines.extend(f"  {name}: {attributes[name]}" for name in extensions)
    data = event.get_data()
    if data is not None:
        lines.append("Data,")
        if isinstance(data, bytes | bytearray):
            body = bytes(data).decode("utf-8", errors="replace")
        elif isinstance(data, str):
            body = data
        else:
            body = json.dumps(data, indent=2, ensure_ascii=False, default=str)
        lines.extend(f"  {line}" for line in body.splitlines())
    return "\n".join(lines) + "\n"


_CONTEXT: Final = frozenset(
    {"specversion", "type", "source", "subject", "id", "time", "dataschema", "datacontenttype"}
)


def event_display(event: CloudEvent) -> None:
    """Built-in handler: print each event as Knative's event-display image does."""
    print(format_event_display(event), flush=True)


def split_results(results: Any, count: int) -> list[SubscriberResponse]:
    """Responses for a batch handler's results (one per event), or 500 for all if malformed."""
    if not isinstance(results, Sequence) or isinstance(results, str | bytes):
        problem = f"batch handler returned {type(results).__name__}; expected a list"
        return [SubscriberResponse(code=500, error=problem)] * count
    if len(results) != count:
        problem = f"batch handler returned {len(results)} results for {count} events"
        return [SubscriberResponse(code=500, error=problem)] * count
    return [response_for_result(result) for result in results]
