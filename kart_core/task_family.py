"""Task classes by their luigi family (``get_task_family()``: the class name, after ``task_namespace`` if set).

luigi finds a task class by its family alone (``Register.get_task_cls``: a command line's root task, gokart's
``{"type": family}`` JSON of a task-valued parameter), and two imported classes of one family (``a.Greet``,
``b.Greet``) make the name "ambiguous" with no word of which classes they are. Here the error names them.
"""

from __future__ import annotations

import re

import luigi
from luigi.task_register import Register, TaskClassAmbigiousException

from kart_core.errors import TaskSpecError

__all__ = [
    "AmbiguousTaskFamilyError",
    "ambiguous_family_error",
    "classes_of_family",
    "dotted_names",
    "explained",
    "task_class_of_family",
]


class AmbiguousTaskFamilyError(TaskSpecError, TaskClassAmbigiousException):
    """Two or more imported task classes have the family a name looks up; the message names them by module.

    A ``TaskClassAmbigiousException`` still (what luigi 3.8.1 raises there), so code catching luigi's catches it.
    """


def classes_of_family(family: str) -> list[type]:
    """The task classes luigi's registry holds (``_visible_in_registry``) whose family is ``family``, in the order
    they were defined."""
    return [
        cls
        for cls in list(Register._reg)  # a copy: another thread may define a class meanwhile
        if cls._visible_in_registry and cls.get_task_family() == family
    ]


def dotted_names(classes: list[type]) -> list[str]:
    """``module.Qualname`` of each class, as ``kart run`` takes them, without repeats."""
    return list(dict.fromkeys(f"{cls.__module__}.{cls.__qualname__}" for cls in classes))


def task_class_of_family(family: str) -> type[luigi.Task]:
    """luigi's ``Register.get_task_cls(family)``, whose ambiguity error names the classes.

    Raises:
        AmbiguousTaskFamilyError: classes of different modules (neither a subclass of the other) have ``family``.
        luigi.task_register.TaskClassNotFoundException: no class has it (luigi's own message, with close names).
    """
    try:
        return Register.get_task_cls(family)  # type: ignore[no-any-return]
    except TaskClassAmbigiousException:
        raise ambiguous_family_error(family) from None


def ambiguous_family_error(family: str) -> AmbiguousTaskFamilyError:
    """The error for ``family`` found ambiguous: its classes by dotted name and how to name one."""
    names = [repr(name) for name in dotted_names(classes_of_family(family))]
    listed = f"{', '.join(names[:-1])} and {names[-1]}" if len(names) > 1 else "more than one class"
    return AmbiguousTaskFamilyError(
        f"Task {family!r} is ambiguous: the imported task classes {listed} have that family, and luigi finds a "
        f"class by its family alone. Give one of them a task_namespace, or import only one of their modules "
        f"(kart run, tree, why and report take the module.Class name)."
    )


def explained(exc: TaskClassAmbigiousException) -> TaskClassAmbigiousException:
    """luigi's own "Task 'X' is ambiguous" as ``ambiguous_family_error``; ``exc`` itself when its family cannot be read."""
    if isinstance(exc, AmbiguousTaskFamilyError):
        return exc
    found = re.fullmatch(r"Task '(.+)' is ambiguous", str(exc))  # luigi 3.8.1's Register.get_task_cls wording
    return ambiguous_family_error(found.group(1)) if found else exc
