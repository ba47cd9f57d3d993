"""Error types shared by every capability."""


class UserError(Exception):
    """An error caused by the user's input: the CLI prints it as one line and exits with status 2."""


class ConfigError(UserError, ValueError):
    """A run config (TOML) that does not validate: one line naming the key by its dotted path (``edits[1].kind``).

    A ``ValueError`` too, so code that checks configs with ``except ValueError`` keeps working.
    """
