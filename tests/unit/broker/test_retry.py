"""Knative's retry rules: backoff formulas, retryable codes, Retry-After, spec resolution."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from knray.broker.retry import (
    DeliveryPolicy,
    backoff_s,
    is_retryable,
    parse_retry_after_s,
    retry_delay_s,
)
from knray.manifests import BackoffPolicy, DeliverySpec, Destination


def test_linear_backoff_schedule_matches_knative() -> None:
    # retries_test.go "Successful Linear Backoff 2500ms, 5 retries"
    policy = DeliveryPolicy.from_spec(
        DeliverySpec(retry=5, backoff_policy=BackoffPolicy.LINEAR, backoff_delay="PT2.5S")
    )
    assert policy.schedule_s() == [2.5, 5.0, 7.5, 10.0, 12.5]


@pytest.mark.parametrize(
    ("delay", "expected"),
    [("PT1.5S", [3.0, 6.0, 12.0, 24.0, 48.0]), ("PT0.5S", [1.0, 2.0, 4.0, 8.0, 16.0])],
)
def test_exponential_backoff_schedule_matches_knative(delay: str, expected: list[float]) -> None:
    spec = DeliverySpec(retry=5, backoff_policy=BackoffPolicy.EXPONENTIAL, backoff_delay=delay)
    assert DeliveryPolicy.from_spec(spec).schedule_s() == expected


def test_no_backoff_without_both_policy_and_delay() -> None:
    assert backoff_s(None, 1.0, 3) == 0.0
    assert backoff_s(BackoffPolicy.LINEAR, None, 3) == 0.0
    assert DeliveryPolicy.from_spec(DeliverySpec(retry=3, backoff_delay="PT1S")).schedule_s() == [
        0.0,
        0.0,
        0.0,
    ]


@pytest.mark.parametrize(
    ("code", "retry"),
    [
        (None, True),
        (100, False),
        (200, False),
        (202, False),
        (300, False),
        (301, False),
        (400, False),
        (401, False),
        (403, False),
        (404, True),
        (408, True),
        (409, True),
        (429, True),
        (500, True),
        (501, True),
        (503, True),
    ],
)
def test_selective_retry_codes(code: int | None, retry: bool) -> None:
    # retries_test.go TestSelectiveRetry
    assert is_retryable(code) is retry


def _delay(code: int, retry_after_s: float, retry_after_max_s: float | None) -> float:
    return retry_delay_s(
        policy=BackoffPolicy.LINEAR,
        delay_s=1.0,
        retry=1,
        code=code,
        retry_after_s=retry_after_s,
        retry_after_max_s=retry_after_max_s,
    )


def test_retry_after_needs_retry_after_max_and_is_capped() -> None:
    # Not opted in: the header is ignored; PT0S opts out.
    assert _delay(429, 30, None) == 1.0
    assert _delay(429, 30, 0.0) == 1.0
    # Capped by retryAfterMax, and the larger of backoff and Retry-After wins.
    assert _delay(429, 30, 10.0) == 10.0
    assert _delay(503, 5, 10.0) == 5.0
    assert _delay(503, 0.5, 10.0) == 1.0
    # Only 429 and 503 carry a meaningful Retry-After.
    assert _delay(500, 5, 10.0) == 1.0


def test_parse_retry_after_seconds_and_http_date() -> None:
    now = datetime(2024, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after_s("120") == 120.0
    assert parse_retry_after_s(format_datetime(now + timedelta(seconds=90), usegmt=True), now) == 90
    assert parse_retry_after_s("soon") is None
    assert parse_retry_after_s("") is None
    assert parse_retry_after_s(None) is None


def test_timeout_and_retry_after_max_from_spec() -> None:
    spec = DeliverySpec(retry=2, timeout="PT0.25S", retry_after_max="PT1M")
    policy = DeliveryPolicy.from_spec(spec)
    assert (policy.retry, policy.timeout_s, policy.retry_after_max_s) == (2, 0.25, 60.0)
    assert DeliveryPolicy.from_spec(DeliverySpec(timeout="PT0S")).timeout_s is None
    assert DeliveryPolicy.from_spec(None) == DeliveryPolicy()


def test_trigger_delivery_replaces_broker_delivery_as_a_whole() -> None:
    dls = Destination(uri="http://127.0.0.1:9/dls")
    broker = DeliverySpec(
        retry=5,
        backoff_policy=BackoffPolicy.EXPONENTIAL,
        backoff_delay="PT1S",
        dead_letter_sink=dls,
    )
    trigger = DeliverySpec(retry=1)
    assert DeliveryPolicy.resolve(broker, None).retry == 5
    assert DeliveryPolicy.resolve(broker, None).dead_letter_sink == dls
    resolved = DeliveryPolicy.resolve(broker, trigger)
    assert resolved == DeliveryPolicy(retry=1)
