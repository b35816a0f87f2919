"""Knative Services as Ray Serve deployments: handlers, the replica, KPA autoscaling on events
in flight, deployment, and the broker-side subscriber."""

from knray.serving.deployment import (
    app_name,
    autoscaling_config,
    build_application,
    delete_service,
    deploy_service,
    kpa_params,
)
from knray.serving.handlers import (
    BatchOptions,
    HandlerLoadError,
    LoadedHandler,
    batch_handler,
    builtin_handler_for_image,
    event_display,
    format_event_display,
    handler_spec_for_service,
    load_handler,
)
from knray.serving.kpa import KpaDecision, KpaParams, decide
from knray.serving.policy import KnativeAutoscalingPolicy
from knray.serving.replica import ServiceReplica
from knray.serving.subscriber import ChunkSizer, ServeSubscriber

__all__ = [
    "BatchOptions",
    "ChunkSizer",
    "HandlerLoadError",
    "KnativeAutoscalingPolicy",
    "KpaDecision",
    "KpaParams",
    "LoadedHandler",
    "ServeSubscriber",
    "ServiceReplica",
    "app_name",
    "autoscaling_config",
    "batch_handler",
    "build_application",
    "builtin_handler_for_image",
    "decide",
    "delete_service",
    "deploy_service",
    "event_display",
    "format_event_display",
    "handler_spec_for_service",
    "kpa_params",
    "load_handler",
]
