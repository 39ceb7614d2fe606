"""deepeut's errors, one family: every error deepeut reports in one line derives from :class:`DeepeutError`.

- :class:`InputError`: a bad setting or input named by its key (``ConfigError``); the run stops before any
  work with exit code 2.
- :class:`StageError`: a stage could not finish for a reason it can name (failed labels, a box that cannot be
  packed, a potential that flew apart, an unreadable trajectory, a busy folder); exit code 1, checkpoints kept.

run.py catches these two and prints ``deepeut: error: <message>``; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class DeepeutError(Exception):
    """Base of every error deepeut reports in one line."""


class InputError(DeepeutError, ValueError):
    """A bad setting or input: the message names the key; exit code 2."""


class StageError(DeepeutError, RuntimeError):
    """A stage stopped for a reason it names; exit code 1."""
