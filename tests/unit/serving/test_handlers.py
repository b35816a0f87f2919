"""Handler loading, its error messages, result mapping and the event-display built-in."""

from __future__ import annotations

import asyncio

import pytest

from knray.events import CloudEvent
from knray.manifests import parse_manifests
from knray.manifests.service import KnativeService
from knray.serving import (
    HandlerLoadError,
    batch_handler,
    builtin_handler_for_image,
    format_event_display,
    handler_spec_for_service,
    load_handler,
)
from knray.serving.handlers import (
    EVENT_DISPLAY_HANDLER,
    handler_from_object,
    import_handler_target,
    response_for_result,
    split_results,
)

HERE = __name__


def sync_handler(event: CloudEvent) -> CloudEvent | None:
    return None


async def async_handler(event: CloudEvent) -> CloudEvent:
    return event


class Model:
    """A class handler: instantiated once per replica."""

    instances = 0

    def __init__(self) -> None:
        Model.instances += 1

    async def __call__(self, event: CloudEvent) -> None:
        return None


class NeedsArgs:
    def __init__(self, path: str) -> None:
        self.path = path

    def __call__(self, event: CloudEvent) -> None:
        return None


def two_args(event: CloudEvent, other: int) -> None:
    return None


@batch_handler(max_batch_size=4, batch_wait_timeout_s=0.5)
def batched(events: list[CloudEvent]) -> list[object]:
    return [None for _ in events]


NOT_CALLABLE = 42


def _event(kind: str = "demo", **extra: object) -> CloudEvent:
    return CloudEvent({"id": "1", "source": "/s", "type": kind, "specversion": "1.0", **extra})


def test_loads_functions_classes_and_batch_handlers() -> None:
    loaded = load_handler(f"{HERE}:sync_handler")
    assert not loaded.is_async
    assert loaded.batch is None
    assert load_handler(f"{HERE}:async_handler").is_async
    before = Model.instances
    model = load_handler(f"{HERE}:Model")
    assert model.is_async
    assert Model.instances == before + 1
    batch = load_handler(f"{HERE}:batched")
    assert batch.batch is not None
    assert (batch.batch.max_batch_size, batch.batch.batch_wait_timeout_s) == (4, 0.5)


def test_validation_without_instantiating_classes() -> None:
    before = Model.instances
    loaded = load_handler(f"{HERE}:Model", instantiate=False)
    assert loaded.is_async
    assert Model.instances == before


async def test_sync_and_async_calls() -> None:
    event = _event()
    assert await load_handler(f"{HERE}:async_handler").call(event) is event
    assert await load_handler(f"{HERE}:sync_handler").call(event) is None


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ("no_colon", "expected 'package.module:attribute'"),
        ("knray_missing_module_xyz:handler", "module 'knray_missing_module_xyz' not found"),
        (f"{HERE}:missing", f"module '{HERE}' has no attribute 'missing'"),
        (f"{HERE}:two_args", "wrong signature two_args"),
        (f"{HERE}:NeedsArgs", "must be constructible without arguments"),
        (f"{HERE}:NOT_CALLABLE", "is a int, not a function or class"),
    ],
)
def test_load_errors_name_the_service_and_annotation(spec: str, problem: str) -> None:
    with pytest.raises(HandlerLoadError) as caught:
        load_handler(spec, service="default/hello")
    message = str(caught.value)
    assert message.startswith("Service default/hello: annotation knray.dev/handler=")
    assert problem in message
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize(
    "image",
    [
        "registry.cn-hangzhou.aliyuncs.com/knative-sample/event-display:0128",
        "gcr.io/knative-releases/knative.dev/eventing/cmd/event_display",
        "gcr.io/knative-releases/knative.dev/eventing/cmd/event_display@sha256:abc123",
        "event-display",
        "localhost:5000/event-display:latest",
    ],
)
def test_event_display_images_map_to_the_builtin(image: str) -> None:
    assert builtin_handler_for_image(image) == EVENT_DISPLAY_HANDLER


@pytest.mark.parametrize("image", [None, "", "nginx:1.25", "example.com/event-display-extra"])
def test_other_images_are_not_builtins(image: str | None) -> None:
    assert builtin_handler_for_image(image) is None


def _service(annotations: str, image: str) -> KnativeService:
    text = f"""
apiVersion: serving.knative.dev/v1
kind: Service
metadata: {{name: hello, namespace: default}}
spec:
  template:
    metadata:
      annotations: {{{annotations}}}
    spec:
      containers: [{{image: "{image}"}}]
"""
    (service,) = parse_manifests(text).resources
    assert isinstance(service, KnativeService)
    return service


def test_service_handler_from_annotation_image_or_error() -> None:
    annotated = _service(f'knray.dev/handler: "{HERE}:sync_handler"', "example.com/x")
    assert handler_spec_for_service(annotated) == f"{HERE}:sync_handler"
    display = _service("", "gcr.io/knative-releases/knative.dev/eventing/cmd/event_display")
    assert handler_spec_for_service(display) == EVENT_DISPLAY_HANDLER
    load_handler(EVENT_DISPLAY_HANDLER)
    with pytest.raises(
        HandlerLoadError, match=r"Service default/hello: no handler.*knray.dev/handler"
    ):
        handler_spec_for_service(_service("", "example.com/unknown:1"))


def test_results_map_to_responses() -> None:
    reply = _event("reply")
    assert response_for_result(None).code == 200
    assert response_for_result(reply).reply is reply
    failed = response_for_result(RuntimeError("nope"))
    assert (failed.code, failed.error) == (500, "RuntimeError: nope")
    wrong = response_for_result(3)
    assert wrong.code == 500
    assert "handler returned int" in (wrong.error or "")


def test_batch_results_fail_per_event_or_all_when_malformed() -> None:
    codes = [r.code for r in split_results([None, ValueError("x"), _event()], 3)]
    assert codes == [200, 500, 200]
    short = split_results([None], 2)
    assert [r.code for r in short] == [500, 500]
    assert "1 results for 2 events" in (short[0].error or "")
    assert split_results(None, 1)[0].code == 500


def test_event_display_format_matches_knative() -> None:
    event = CloudEvent(
        {
            "specversion": "1.0",
            "type": "dev.knative.samples.helloworld",
            "source": "dev.knative.samples/helloworldsource",
            "id": "536808d3",
            "time": "2019-10-04T22:35:26.05871736Z",
            "datacontenttype": "application/json",
            "myext": "x",
        },
        data={"msg": "Hello World"},
    )
    assert format_event_display(event) == (
        "☁️  cloudevents.Event\n"
        "Context Attributes,\n"
        "  specversion: 1.0\n"
        "  type: dev.knative.samples.helloworld\n"
        "  source: dev.knative.samples/helloworldsource\n"
        "  id: 536808d3\n"
        "  time: 2019-10-04T22:35:26.05871736Z\n"
        "  datacontenttype: application/json\n"
        "Extensions,\n"
        "  myext: x\n"
        "Data,\n"
        "  {\n"
        '    "msg": "Hello World"\n'
        "  }\n"
    )


def test_batch_handler_rejects_bad_options() -> None:
    with pytest.raises(ValueError, match="max_batch_size"):
        batch_handler(max_batch_size=0)
    assert asyncio.iscoroutinefunction(async_handler)


def test_handler_objects_load_like_specs() -> None:
    assert import_handler_target(f"{HERE}:Model") is Model
    function = handler_from_object(sync_handler)
    assert function.spec == f"{HERE}:sync_handler"
    assert function.function is sync_handler
    batch = handler_from_object(batched)
    assert batch.batch is not None
    assert batch.batch.max_batch_size == 4
    instance = handler_from_object(Model, service="default/m")
    assert isinstance(instance.function, Model)
    assert instance.is_async
    with pytest.raises(HandlerLoadError, match="wrong signature"):
        handler_from_object(two_args, service="default/m")
    with pytest.raises(HandlerLoadError, match="not a function or class"):
        handler_from_object(NOT_CALLABLE, spec=f"{HERE}:NOT_CALLABLE")
