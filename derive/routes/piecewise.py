from . import NotApplicable
NAME = "piecewise"

def attempt(fam, n):
    return NotApplicable(NAME, "not implemented yet")
