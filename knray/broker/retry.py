"""Knative's retry rules as pure functions, and the delivery policy of one route.

References (knative/eventing):
- ``pkg/kncloudevents/retries.go``: ``RetryConfigFromDeliverySpec`` (backoff formulas, timeout,
  retryAfterMax) and ``SelectiveRetry`` (which responses are retried).
- ``pkg/kncloudevents/http_client.go`` / ``message_sender.go``: ``generateBackoffFn`` and
  ``parseRetryAfterDuration`` (Retry-After on 429 and 503, capped by retryAfterMax).
- ``pkg/reconciler/broker/trigger/trigger.go`` ``subscribeToBrokerChannel``: a Trigger's
  ``spec.delivery``, when set, replaces its Broker's as a whole.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Final

from knray.manifests.base import Destination
from knray.manifests.delivery import BackoffPolicy, DeliverySpec

__all__ = [
    "RETRY_AFTER_CODES",
    "DeliveryPolicy",
    "backoff_s",
    "is_retryable",
    "parse_retry_after_s",
    "retry_delay_s",
]

# SelectiveRetry: 404 (pod becoming ready), 408, 409 and 429 are the retried 4xx codes.
_RETRYABLE_4XX: Final = frozenset({404, 408, 409, 429})
# generateBackoffFn: Retry-After is read only on 429 Too Many Requests and 503 Unavailable.
RETRY_AFTER_CODES: Final = frozenset({429, 503})


def is_retryable(code: int | None) -> bool:
    """Whether a failed attempt is retried (``SelectiveRetry`` in retries.go).

    No response (None: timeout, connection error, crash), 404, 408, 409, 429 and every 5xx are
    retried; 1xx, 2xx, 3xx and the other 4xx are not.
    """
    if code is None or code == -1:
        return True
    return code >= 500 or code in _RETRYABLE_4XX


def backoff_s(policy: BackoffPolicy | None, delay_s: float | None, retry: int) -> float:
    """The backoff before retry number ``retry`` (1 for the first retry), in seconds.

    ``RetryConfigFromDeliverySpec``: linear is ``delay * retry``, exponential
    ``delay * 2**retry``; without both a policy and a delay there is no backoff (0).
    """
    if policy is None or delay_s is None or retry <= 0:
        return 0.0
    if policy is BackoffPolicy.EXPONENTIAL:
        return float(delay_s * 2.0**retry)
    return float(delay_s * retry)


def parse_retry_after_s(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds asked for by a ``Retry-After`` header, or None when absent or invalid.

    ``parseRetryAfterDuration``: an integer number of seconds, else an HTTP-date (RFC 7231
    section 7.1.3) taken relative to ``now``.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        return float(int(text, 10))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return (when - (now or datetime.now(UTC))).total_seconds()


def retry_delay_s(
    *,
    policy: BackoffPolicy | None,
    delay_s: float | None,
    retry: int,
    code: int | None,
    retry_after_s: float | None,
    retry_after_max_s: float | None,
) -> float:
    """The wait before retry number ``retry``: the backoff, or a longer honoured Retry-After.

    ``generateBackoffFn``: Retry-After counts only when ``retryAfterMax`` is set (Knative's
    opt-in while the feature is experimental; ``PT0S`` therefore ignores it) and only on 429
    and 503; it is capped at ``retryAfterMax``; the larger of it and the backoff wins.
    """
    backoff = backoff_s(policy, delay_s, retry)
    honoured = 0.0
    if retry_after_max_s is not None and code in RETRY_AFTER_CODES and retry_after_s is not None:
        honoured = min(retry_after_s, retry_after_max_s)
    return max(backoff, honoured)


@dataclass(frozen=True, slots=True)
class DeliveryPolicy:
    """How one route delivers: retries, backoff, per-attempt timeout, Retry-After cap, DLS.

    Durations are seconds. ``timeout_s`` None means no timeout (Knative: a zero request
    timeout is no timeout). ``dead_letter_sink`` is the manifest Destination; the runtime turns
    it into a dead-letter Subscriber on the Route.
    """

    retry: int = 0
    backoff_policy: BackoffPolicy | None = None
    backoff_delay_s: float | None = None
    timeout_s: float | None = None
    retry_after_max_s: float | None = None
    dead_letter_sink: Destination | None = None

    @classmethod
    def from_spec(cls, spec: DeliverySpec | None) -> DeliveryPolicy:
        """The policy of one DeliverySpec (``RetryConfigFromDeliverySpec``); None: defaults."""
        if spec is None:
            return cls()
        timeout_s = spec.timeout_s
        return cls(
            retry=spec.retry or 0,
            backoff_policy=spec.backoff_policy,
            backoff_delay_s=spec.backoff_delay_s,
            timeout_s=timeout_s if timeout_s else None,
            retry_after_max_s=spec.retry_after_max_s,
            dead_letter_sink=spec.dead_letter_sink,
        )

    @classmethod
    def resolve(
        cls, broker: DeliverySpec | None = None, trigger: DeliverySpec | None = None
    ) -> DeliveryPolicy:
        """The effective policy of a Trigger: its own ``delivery`` if set, else its Broker's.

        Whole-spec override, as Knative's trigger reconciler does (``delivery :=
        t.Spec.Delivery; if delivery == nil { delivery = b.Spec.Delivery }``): a Trigger that
        sets only ``retry`` does not inherit its Broker's backoff or dead-letter sink.
        """
        return cls.from_spec(trigger if trigger is not None else broker)

    def delay_before_retry_s(
        self, retry: int, code: int | None = None, retry_after_s: float | None = None
    ) -> float:
        """The wait before retry number ``retry`` (1-based) after a failure with ``code``."""
        return retry_delay_s(
            policy=self.backoff_policy,
            delay_s=self.backoff_delay_s,
            retry=retry,
            code=code,
            retry_after_s=retry_after_s,
            retry_after_max_s=self.retry_after_max_s,
        )

    def schedule_s(self) -> list[float]:
        """The backoff before each retry, in order (no Retry-After)."""
        return [self.delay_before_retry_s(n) for n in range(1, self.retry + 1)]
