"""The Knative error extensions stamped on an event sent to a dead-letter sink.

References (knative/eventing): ``pkg/kncloudevents/attributes/knative_error.go`` (names, 1024
characters at most for the data) and ``pkg/kncloudevents/event_dispatcher.go``
``dispatchExecutionInfoTransformers`` / ``executeRequest`` (the data is the base64 of the failed
response's body; without a response the code is 500 and the body ``dispatch error: <err>``).
"""

from __future__ import annotations

import base64
from typing import Final

from knray.broker.outcome import SubscriberResponse
from knray.events import CloudEvent

__all__ = [
    "ERROR_CODE_EXTENSION",
    "ERROR_DATA_EXTENSION",
    "ERROR_DATA_MAX_BODY_BYTES",
    "ERROR_DATA_MAX_LENGTH",
    "ERROR_DEST_EXTENSION",
    "NO_RESPONSE_CODE",
    "error_data",
    "with_error_extensions",
]

ERROR_DEST_EXTENSION: Final = "knativeerrordest"
ERROR_CODE_EXTENSION: Final = "knativeerrorcode"
ERROR_DATA_EXTENSION: Final = "knativeerrordata"
# KnativeErrorDataExtensionMaxLength: characters of the base64 text.
ERROR_DATA_MAX_LENGTH: Final = 1024
# The body bytes whose base64 fills those characters exactly (3 bytes -> 4 characters).
ERROR_DATA_MAX_BODY_BYTES: Final = ERROR_DATA_MAX_LENGTH // 4 * 3
# executeRequest: a dispatch error (no response) is reported as 500 Internal Server Error.
NO_RESPONSE_CODE: Final = 500


def error_data(response: SubscriberResponse) -> str:
    """``knativeerrordata``: base64 of the failed response's body, cut to 1024 characters."""
    body = response.body
    if body is None:
        if response.code is None:
            body = f"dispatch error: {response.error or 'no response'}".encode()
        else:
            body = (response.error or "").encode()
    return base64.b64encode(body[:ERROR_DATA_MAX_BODY_BYTES]).decode("ascii")[
        :ERROR_DATA_MAX_LENGTH
    ]


def with_error_extensions(
    event: CloudEvent, destination: str, response: SubscriberResponse
) -> CloudEvent:
    """The event as it goes to a dead-letter sink: the three Knative error extensions added."""
    code = NO_RESPONSE_CODE if response.code is None else response.code
    return event.evolve(
        {
            ERROR_DEST_EXTENSION: destination,
            ERROR_CODE_EXTENSION: code,
            ERROR_DATA_EXTENSION: error_data(response),
        }
    )
