"""Print 'tests failures errors skipped' summed over JUnit XML files (pytest's and rosunit's).

With --failures, print the message and text of every failed or erroring test case instead, so a CI log
shows why a rostest suite failed even though rostest keeps the test node's output in its log folder.
"""

import sys
import xml.etree.ElementTree as ET


def suites(path: str):
    root = ET.parse(path).getroot()
    return [root] if root.tag == "testsuite" else list(root.iter("testsuite"))


def counts(path: str) -> tuple:
    total = [0, 0, 0, 0]
    for s in suites(path):
        for i, key in enumerate(("tests", "failures", "errors", "skipped")):
            total[i] += int(s.get(key, 0) or 0)
    return tuple(total)


def failures(path: str) -> list:
    out = []
    for s in suites(path):
        for case in s.iter("testcase"):
            for bad in list(case.findall("failure")) + list(case.findall("error")):
                text = (bad.get("message") or "") + "\n" + (bad.text or "")
                out.append(f"--- {case.get('classname', '')}.{case.get('name', '')}\n{text.strip()[-3000:]}")
    return out


if __name__ == "__main__":
    args = sys.argv[1:]
    show = bool(args) and args[0] == "--failures"
    acc = [0, 0, 0, 0]
    for p in args[1:] if show else args:
        try:
            if show:
                print("\n".join(failures(p)))
            else:
                acc = [a + b for a, b in zip(acc, counts(p))]
        except (OSError, ET.ParseError):
            continue
    if not show:
        print(*acc)
