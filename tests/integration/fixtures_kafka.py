"""Kafka-protocol broker fixtures for the integration tests."""
