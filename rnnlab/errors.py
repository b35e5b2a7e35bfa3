"""The one exception a person can act on.

UserError means "your input is wrong and here is how to fix it": a missing file, a corrupt checkpoint, a flag
out of range. The CLI turns it into a single line `error: ...` and exit code 2. Anything else that escapes is a bug
in rnnlab and is allowed to show a traceback.
"""


class UserError(Exception):
    """Bad input a person can fix. The message is one line: what is wrong, then how to fix it."""
