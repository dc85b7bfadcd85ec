"""Typed errors of mechgym.

Every error names what went wrong in terms a user can act on: the agent and the phase for
actions, the field for contexts and files, the constant for mechanism parameters.
"""

from __future__ import annotations


class MechgymError(Exception):
    """Base class of every error mechgym raises on purpose."""


class ContextError(MechgymError, ValueError):
    """An invalid context (values, beliefs, coalitions, market, states).

    Parameters
    ----------
    field : str
        Dotted path of the offending field, e.g. ``"values[1]"`` or ``"beliefs.0.2"``.
    problem : str
        What is wrong and, where possible, what to do.
    """

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}")


class ContextFileError(ContextError):
    """A context or configuration file that cannot be read or is malformed."""

    def __init__(self, path: str, field: str, problem: str) -> None:
        self.path = path
        super().__init__(field, problem)
        self.args = (f"{path}: {field}: {problem}",)

    def __str__(self) -> str:
        return self.args[0]


class ParameterError(MechgymError, ValueError):
    """A mechanism or environment constant outside its allowed range."""

    def __init__(self, name: str, problem: str) -> None:
        self.name = name
        self.problem = problem
        super().__init__(f"parameter {name}: {problem}")


class ActionError(MechgymError, ValueError):
    """An action an agent may not take.

    Parameters
    ----------
    agent : str
        The agent's name, e.g. ``"player_1"``.
    phase : str
        The phase of the node the agent acts at.
    problem : str
        What is wrong.
    """

    def __init__(self, agent: str, phase: str, problem: str) -> None:
        self.agent = agent
        self.phase = phase
        self.problem = problem
        super().__init__(f"{agent} in phase '{phase}': {problem}")


class OutOfSpaceError(ActionError):
    """An action that is not an element of the agent's action space."""


class IllegalActionError(ActionError):
    """An action inside the space but excluded by the action mask at this node."""


class MalformedAnnouncementError(ActionError):
    """A structured announcement that violates the mechanism's format."""


class NotActingError(ActionError):
    """An agent that acts where it is not its turn, or after it has finished."""


class SolverError(MechgymError, RuntimeError):
    """A benchmark solver that could not produce an answer."""
