"""``inherits_config_params``: fill a task's parameters from a luigi.Config class.

A parameter set explicitly on the task wins; otherwise the config class's value (read from the
luigi config file or the command line like any luigi.Config) is used.
"""

from __future__ import annotations

from typing import Any

import luigi
import luigi.task

__all__ = ["inherits_config_params"]


class inherits_config_params:  # noqa: N801 - gokart's public name
    """Class decorator: parameters of ``config_class`` become defaults of the decorated task's same-named ones.

    ``parameter_alias`` maps a config parameter name to the task parameter it fills.
    """

    def __init__(self, config_class: type[luigi.Config], parameter_alias: dict[str, str] | None = None) -> None:
        self._config_class = config_class
        self._parameter_alias = dict(parameter_alias or {})

    def __call__(self, task_class: type[Any]) -> type[Any]:
        """Return a subclass of ``task_class`` (same name and module) that reads the config class first."""
        inherited = self._inherited_values

        @luigi.task._task_wraps(task_class)
        class Inheriting(task_class):  # type: ignore[misc, valid-type]
            @classmethod
            def get_param_values(cls, params: Any, args: Any, kwargs: dict[str, Any]) -> Any:
                merged = {**inherited(dict(params), len(args)), **kwargs}
                return super().get_param_values(params, args, merged)

        return Inheriting

    def _inherited_values(self, task_params: dict[str, luigi.Parameter], positional_count: int) -> dict[str, Any]:
        """Config values for the task parameters that exist and were not given positionally."""
        positional = [name for name, param in task_params.items() if param.positional][:positional_count]
        values = {}
        for name, value in self._config_class().param_kwargs.items():
            target = self._parameter_alias.get(name, name)
            if target in task_params and target not in positional:
                values[target] = value
        return values
