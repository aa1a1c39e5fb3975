"""The one error type bad data raises: a message naming the file and the field."""


class DataError(ValueError):
    """A data set on disk is missing, malformed or inconsistent."""
