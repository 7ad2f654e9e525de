"""Errors from hardware backends: each says what to install or check."""


class HalError(RuntimeError):
    pass


def missing_library(package: str, install: str) -> HalError:
    return HalError(f"the '{package}' library is not available: {install}")
