"""CloudEvents: knray's event value and its HTTP and Kafka bindings."""

from knray.events.event import CloudEvent, is_json_content_type
from knray.events.http import (
    from_http,
    from_http_batch,
    from_http_binary,
    from_http_structured,
    to_http_batch,
    to_http_binary,
    to_http_structured,
)
from knray.events.json_format import from_json, from_json_batch, to_json, to_json_batch
from knray.events.kafka import (
    KafkaRecord,
    from_kafka,
    is_cloudevent,
    to_kafka_binary,
    to_kafka_structured,
)

__all__ = [
    "CloudEvent",
    "KafkaRecord",
    "from_http",
    "from_http_batch",
    "from_http_binary",
    "from_http_structured",
    "from_json",
    "from_json_batch",
    "from_kafka",
    "is_cloudevent",
    "is_json_content_type",
    "to_http_batch",
    "to_http_binary",
    "to_http_structured",
    "to_json",
    "to_json_batch",
    "to_kafka_binary",
    "to_kafka_structured",
]
