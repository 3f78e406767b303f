"""One exception type for every mistake a user can fix, so the CLI can print it plainly."""


class UserError(Exception):
    """A problem with the user's input (file, key, value) — shown without a traceback.

    The message must name the file, line, key or value at fault and what would be valid.
    """
