"""The error type for bad input a user can fix. Every `cos-jax` subcommand prints it as one line,
`error: <what is wrong>; <how to fix it>`, and exits with status 2 (see `cos_jax.cli.is_user_error`)."""

from __future__ import annotations


class UsageError(ValueError):
    """A bad argument, file or value that the message names, with the fix."""
