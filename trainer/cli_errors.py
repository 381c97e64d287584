"""How the command line reports an exception: bad input, a failed run, or a crash.

- **Bad input** (exit status 2, one line ``error: <message>``): a ``ValueError``, ``TypeError``,
  ``OSError`` (``FileNotFoundError``, ...) or ``ImportError`` raised before training started (recipe,
  overrides, training params, data set and model arguments, the resume checkpoint), and a
  ``RuntimeError`` raised by phasetrain's own checks then (a checkpoint that does not fit).
- **A failed run** (exit status 1, one line): a ``callbacks.errors.TrainingFailure`` (a non-finite
  loss, a checkpoint write that failed, non-finite weights), whenever it is raised.
- **A crash** (exit status 1, the traceback and then one line): anything else, including any
  exception raised after training started (the trainer marks those, trainer.guards).

``--debug`` (anywhere on the command line) or ``PHASETRAIN_DEBUG=1`` adds the traceback to every error.
"""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path

from callbacks.errors import TrainingFailure
from trainer.guards import raised_during_training

EXIT_FAILED_RUN = 1
EXIT_BAD_INPUT = 2
DEBUG_FLAG = "--debug"
DEBUG_ENV = "PHASETRAIN_DEBUG"

USER_INPUT_ERRORS = (ValueError, TypeError, OSError, ImportError)
_REPOSITORY = Path(__file__).resolve().parents[1]
_OWN_PACKAGES = {"callbacks", "registry", "schedulers", "trainer", "recipes"}


def split_debug_flag(argv: list[str]) -> tuple[list[str], bool]:
    """``argv`` without ``--debug``, and whether tracebacks are wanted (the flag or PHASETRAIN_DEBUG)."""
    debug = DEBUG_FLAG in argv or os.environ.get(DEBUG_ENV, "").strip() not in ("", "0", "false")
    return [arg for arg in argv if arg != DEBUG_FLAG], debug


def exit_code_and_traceback(error: BaseException) -> tuple[int, bool]:
    """(exit status, whether the traceback belongs in the report) for ``error``."""
    if isinstance(error, TrainingFailure):
        return EXIT_FAILED_RUN, False
    if raised_during_training(error):
        return EXIT_FAILED_RUN, True
    if isinstance(error, USER_INPUT_ERRORS) or (isinstance(error, RuntimeError) and _raised_by_phasetrain(error)):
        return EXIT_BAD_INPUT, False
    return EXIT_FAILED_RUN, True


def report(error: BaseException, debug: bool) -> int:
    """Print ``error`` as the command line does; return the exit status."""
    code, with_traceback = exit_code_and_traceback(error)
    message = str(error).strip() or type(error).__name__
    if with_traceback or debug:
        traceback.print_exception(error, file=sys.stderr)
        print(f"error: {type(error).__name__}: {message.splitlines()[0]}", file=sys.stderr, flush=True)
    else:
        print(f"error: {message}", file=sys.stderr, flush=True)
    return code


def _raised_by_phasetrain(error: BaseException) -> bool:
    """True when the innermost frame of ``error``'s traceback is phasetrain's code (not torch's, not the user's)."""
    frames = traceback.extract_tb(error.__traceback__)
    if not frames:
        return False
    try:
        relative = Path(frames[-1].filename).resolve().relative_to(_REPOSITORY)
    except ValueError:
        return False
    return relative.parts[0] in _OWN_PACKAGES
