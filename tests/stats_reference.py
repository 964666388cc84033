"""An independent check of a stats result against Fraction arithmetic (for e2e tests)."""

from fractions import Fraction


def exact_stats(numbers: list[int]) -> dict[str, Fraction]:
    ordered = sorted(numbers)
    middle = len(ordered) // 2
    median = (Fraction(ordered[middle]) if len(ordered) % 2 else
              Fraction(ordered[middle - 1] + ordered[middle], 2))
    return {"count": len(ordered), "min": ordered[0], "max": ordered[-1], "sum": sum(ordered),
            "average": Fraction(sum(ordered), len(ordered)), "median": median}


def matches_exactly(value: dict, numbers: list[int]) -> bool:
    """The six statistics exact: median's digits, and average's (or its "p/q" beside)."""
    want = exact_stats(numbers)
    if any(value[k] != want[k] for k in ("count", "min", "max", "sum")):
        return False
    if Fraction(str(value["median"])) != want["median"]:
        return False
    if "average_exact" in value:
        return Fraction(value["average_exact"]) == want["average"]
    return Fraction(str(value["average"])) == want["average"]
