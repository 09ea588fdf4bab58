"""Argument checks shared by the package: one message format for all."""


def check_choice(name, value, choices):
    """Raises `ValueError` naming `name` and `value` unless `value` is one
    of `choices`."""
    if value not in choices:
        raise ValueError(
            f"`{name}` must be one of {choices}. Received: {name}={value!r}"
        )
