"""Benchmark protocol: named tasks, reference scores shipped with the package, exact scoring
and training runs with interval estimates."""

from .tasks import TASKS, Task, task

__all__ = ["TASKS", "Task", "task"]
