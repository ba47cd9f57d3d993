"""Error types shared by every capability."""


class UserError(Exception):
    """An error caused by the user's input: the CLI prints it as one line and exits with status 2."""
