"""Errors a step or a run can end with, and what the executor does about each.

* :class:`StepError` fails one node; its message is what the step row and the run's
  ``error`` show. ``retryable`` says whether the node's retry policy applies: a broken
  template or a bad config fails the same way every time, so it is not retried.
  ``kind`` classifies the failure for a node's ``retry.retry_on``: ``timeout``,
  ``connection``, ``http_<status>`` (an HTTP answer not accepted) or ``error``.
* :class:`LostRun` means a fenced write found that this executor no longer owns the
  run (another replica claimed it with a higher ``attempt``, or it was cancelled): the
  executor stops working on it and settles nothing more.
"""

from __future__ import annotations


class StepError(Exception):
    """One node failed; the message is shown to the workflow's owner."""

    retryable: bool = True

    def __init__(self, message: str, *, retryable: bool | None = None, kind: str = "error") -> None:
        super().__init__(message)
        if retryable is not None:
            self.retryable = retryable
        self.kind = kind


class ConfigError(StepError):
    """A node's configuration is unusable; retrying cannot help."""

    retryable = False


class LostRun(Exception):  # noqa: N818  # a condition, not a fault: the run moved on
    """A fenced write matched no row: another claim or a cancellation owns the run now."""
