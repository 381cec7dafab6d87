"""The errors the client raises: one base class, one subclass per kind of answer.

Catch WaSidecarError for all of them, or a subclass for one case:

    try:
        wa.start("2")
    except HoldActive as err:      # 409 cooldown: a logout cooldown, a Bad MAC wait, a ban
        retry_in = err.retry_after
    except WaSidecarError as err:
        log.warning("wa-sidecar: %s (%s)", err.message, err.code)
"""

from typing import Dict, Optional, Type


class WaSidecarError(Exception):
    """The API answered an error, or could not be reached.

    status is the HTTP status (None when there was no answer), code the
    API's machine word ("cooldown", "unknown_org", "bad_body", ...) or
    "unreachable", message the API's sentence, and retry_after the seconds
    of a Retry-After header (a 409 cooldown, a 503) or None.
    """

    def __init__(self, status: Optional[int], code: str, message: str,
                 retry_after: Optional[int] = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after

    def __str__(self) -> str:
        return f"{self.message} ({self.status or 'no answer'}, {self.code})"

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(status={self.status!r}, code={self.code!r}, "
                f"message={self.message!r}, retry_after={self.retry_after!r})")


class Unreachable(WaSidecarError):
    """No answer: the socket or port refused the connection, or timed out."""


class BadRequest(WaSidecarError):
    """400: a bad id, body, query or number; the message names the field."""


class Unauthorized(WaSidecarError):
    """401: x-api-key missing or wrong."""


class Forbidden(WaSidecarError):
    """403: a request that looks like a browser page's, or a foreign Host."""


class NotFound(WaSidecarError):
    """404: unknown_org (start registers it), a message, job or route that is not there."""


class Conflict(WaSidecarError):
    """409: not possible in the current state (conflict, not_connected,
    too_many_orgs, an idempotency key reused with another body)."""


class HoldActive(Conflict):
    """409 cooldown: a hold (logout cooldown, Bad MAC wait, ban) lasts
    retry_after more seconds."""


class TooLarge(WaSidecarError):
    """413: the body (a file, a broadcast) is over the sidecar's limit."""


class Unavailable(WaSidecarError):
    """503: persist_failed, timeout, no_answer; retry after retry_after seconds."""


class Booting(Unavailable):
    """503 booting: the sidecar has not loaded its state yet. The client
    retries these itself, up to its boot_wait."""


class ServerError(WaSidecarError):
    """Any other 5xx: a bug in the sidecar (its log has the details)."""


_BY_STATUS: Dict[int, Type[WaSidecarError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: TooLarge,
    503: Unavailable,
}

_BY_CODE: Dict[str, Type[WaSidecarError]] = {
    "cooldown": HoldActive,
    "booting": Booting,
}


def error_for(status: int, code: str, message: str, retry_after: Optional[int] = None) -> WaSidecarError:
    """The error for an answer: by its code when the code has its own
    class, else by its HTTP status."""
    cls = _BY_CODE.get(code) or _BY_STATUS.get(status)
    if cls is None:
        cls = ServerError if status >= 500 else WaSidecarError
    return cls(status, code, message, retry_after)
