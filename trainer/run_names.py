"""The rule for names that become a file or a folder: one path component.

``experiment_name`` becomes ``<ckpt_root_dir>/<experiment_name>``, ``ckpt_name`` and
``ckpt_best_name`` become files in that folder, and test loader names label files and logs. A
recipe is shared between people, so none of these may reach outside the run directory:
``experiment_name: ../../elsewhere`` is refused. ``ckpt_root_dir`` itself may be any directory.
"""

from __future__ import annotations

from typing import Any

NAME_RULE = "must be a single path component: not empty, no '/' or '\\', not '.' or '..', not an absolute path"
"""The rule, as error messages and the params table say it."""


def is_path_component(value: Any) -> bool:
    """True for a non-empty string that names one file or folder inside a directory."""
    return (
        isinstance(value, str)
        and value not in ("", ".", "..")
        and "/" not in value
        and "\\" not in value
        and "\0" not in value
        and not (len(value) >= 2 and value[1] == ":")  # a Windows drive ("C:x") is not inside the directory
    )


def check_path_component(value: Any, where: str, key: str) -> str:
    """Return ``value`` when it is one path component.

    Args:
        value: the name.
        where: the source, for the message ("Trainer", "recipe 'x.yaml'").
        key: the key that holds it ("experiment_name").

    Raises:
        TypeError: not a string.
        ValueError: a path of several components, '.', '..', absolute or empty.
    """
    if not isinstance(value, str):
        raise TypeError(f"{where}: key {key!r} must be a str, got {type(value).__name__} {value!r}.")
    if not is_path_component(value):
        safe = "_".join(part for part in value.replace("\\", "/").split("/") if part not in ("", ".", ".."))
        hint = f" For example {safe!r}." if safe and is_path_component(safe) else ""
        raise ValueError(f"{where}: key {key!r} {NAME_RULE}; got {value!r}.{hint}")
    return value
