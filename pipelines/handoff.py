"""The error of a task queue that could not hand a task to its broker.

Its own module so that both sides import it without importing each other: the queues that raise it
(pipelines/dispatch.py) run stages, and the stage runner that catches it (pipelines/execution.py) is
what they run.
"""


class HandOffFailed(Exception):
    """The broker did not take a task after the retries."""
