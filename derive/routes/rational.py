from . import NotApplicable
NAME = "rational"

def attempt(fam, n):
    return NotApplicable(NAME, "not implemented yet")
