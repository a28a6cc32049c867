"""Retrying transient Hub failures, and turning any Hub failure into one line a user can act on."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx2
from huggingface_hub.errors import HfHubHTTPError

from exporter.shared.hub_client import LOGIN_HINT, short_reason, status_of, unreachable

# 412: the repo moved under us between reading it and committing (parent_commit check) - re-plan.
TRANSIENT_STATUSES = frozenset({408, 412, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff: `attempts` tries in all, waiting first_delay, 2x, 4x … capped at max_delay."""

    attempts: int = 5
    first_delay: float = 2.0
    max_delay: float = 60.0

    def delay(self, attempt: int, error: BaseException) -> float:
        retry_after = _retry_after_seconds(error)
        if retry_after is not None:
            return min(self.max_delay, retry_after)
        return min(self.max_delay, self.first_delay * 2.0 ** (attempt - 1))


def is_transient(error: BaseException) -> bool:
    """Worth another try: a busy or failing Hub, a timeout, a dropped connection. Not a connection
    that could not be made (refused, no such host): waiting 30 s would not change that answer."""
    if isinstance(error, httpx2.ConnectError):
        return False
    return status_of(error) in TRANSIENT_STATUSES or isinstance(error, httpx2.TransportError)


def with_retries[T](
    action: Callable[[], T], *, backoff: Backoff, what: str, note: Callable[[str], None]
) -> T:
    """Run `action`, re-running it after transient failures. `action` must be safe to repeat:
    callers re-read the remote state inside it, so a retry after a commit that did land is a no-op."""
    attempt = 1
    while True:
        try:
            return action()
        except Exception as error:
            if attempt >= backoff.attempts or not is_transient(error):
                raise
            delay = backoff.delay(attempt, error)
            note(
                f"{what}: {short_reason(error)}; retrying in {delay:.1f}s ({attempt}/{backoff.attempts - 1})"
            )
            time.sleep(delay)
            attempt += 1


def _retry_after_seconds(error: BaseException) -> float | None:
    if not isinstance(error, HfHubHTTPError) or error.response is None:
        return None
    value = error.response.headers.get("Retry-After", "")
    return float(value) if value.strip().isdigit() else None


def explain_failure(error: BaseException, *, what: str, endpoint: str) -> str:
    """One line: what failed, why, and what to do next."""
    status = status_of(error)
    reason = short_reason(error)
    if status == 401:
        return f"{what} failed: the Hub rejected the token ({reason}); {LOGIN_HINT}"
    if status == 403:
        return (
            f"{what} failed: permission denied ({reason}); the token needs write access to that namespace "
            "(fine-grained tokens: grant write on the user or org)"
        )
    if status == 404:
        return f"{what} failed: not found ({reason}); check the owner name and the endpoint {endpoint}"
    if status == 409:
        return f"{what} failed: conflict ({reason}); re-run the export (published runs are skipped)"
    if status == 412:
        return f"{what} failed: the repo kept changing while we committed ({reason}); re-run the export"
    if status == 429:
        return f"{what} failed: rate-limited by the Hub ({reason}); wait a few minutes and re-run the export"
    if status is not None and status >= 500:
        return f"{what} failed: the Hub had a server error ({reason}); re-run the export later"
    if isinstance(error, httpx2.TransportError):
        return f"{what} failed: {unreachable(error, endpoint)}"
    return f"{what} failed: {reason}"
