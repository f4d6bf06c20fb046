"""Errors of the data layer; each message names the file, its folder and what to do."""


class DataError(RuntimeError):
    """A dataset file could not be obtained or read."""


class ChecksumError(DataError):
    """A file exists under its official name but its checksum is not the official one."""


class MissingDataError(DataError):
    """An official file is found nowhere and may not (or could not) be downloaded."""
