"""Errors raised by the oracle."""


class OracleError(ArithmeticError):
    """The oracle could not verify a value to the requested precision.

    Raised instead of returning a number whose error is not checked: the
    message names the family, the score vector and the disagreeing values.
    """
