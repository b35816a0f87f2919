"""Sources: turn external records (Kafka, ...) into CloudEvents delivered to an EventSink."""

from knray.sources.kafka import KafkaConsumer
from knray.sources.kafka_connect import KafkaConnectError
from knray.sources.kafka_records import EVENT_TYPE, KeyType, RecordMapper
from knray.sources.kafka_security import (
    KafkaSecurity,
    KafkaSecurityError,
    MissingSecretError,
    SecretResolver,
    kafka_client_options,
)
from knray.sources.offsets import OffsetTracker, PartitionOffsets

__all__ = [
    "EVENT_TYPE",
    "KafkaConnectError",
    "KafkaConsumer",
    "KafkaSecurity",
    "KafkaSecurityError",
    "KeyType",
    "MissingSecretError",
    "OffsetTracker",
    "PartitionOffsets",
    "RecordMapper",
    "SecretResolver",
    "kafka_client_options",
]
