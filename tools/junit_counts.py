"""Print 'tests failures errors skipped' summed over JUnit XML files (pytest's and rostest's)."""
import sys
import xml.etree.ElementTree as ET


def counts(path: str) -> tuple:
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else root.iter("testsuite")
    total = [0, 0, 0, 0]
    for s in suites:
        for i, key in enumerate(("tests", "failures", "errors", "skipped")):
            total[i] += int(s.get(key, 0) or 0)
    return tuple(total)


if __name__ == "__main__":
    acc = [0, 0, 0, 0]
    for p in sys.argv[1:]:
        try:
            c = counts(p)
        except (OSError, ET.ParseError):
            continue
        acc = [a + b for a, b in zip(acc, c)]
    print(*acc)
