"""The one exception type for user errors (bad flags, missing files): the CLI prints it as one line."""


class UserError(Exception):
    """A problem with the command line or the user's files: reported in one line, exit status 2."""
