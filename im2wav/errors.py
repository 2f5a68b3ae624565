"""The error type of user mistakes (a bad flag, a missing or unfit file)."""


class UserError(Exception):
    """A problem with the command line or the user's files: `im2wav` reports it in one line, exit status 2."""
