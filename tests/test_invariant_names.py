"""The format docs' invariants and the tests point at each other (issue 13): every invariant
has a test named after it, and every test named after an invariant names one the docs define.

The IDs come from docs/format/README.md's table "Invariants referred to by number" (a range
such as B1-B3 stands for each ID in it) and from the "Invariants" lists of
docs/format/server-keys.md. A test that checks invariant X is named test_X_...; where two
families share a letter (the LSM's L1-L3 in the README, the lists' L1-L5 in server-keys.md) the
name carries the family too, test_lsm_L1_... and test_list_L4_...: the family is the first word
of the README row's WHERE column (lsm/tree.pyx: lsm), or of the heading of the server-keys.md
section that holds the list (Lists: list; a plural's "s" dropped).
"""
import ast
import os
import re
from collections import defaultdict

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "docs", "format", "README.md")
SERVER_KEYS = os.path.join(ROOT, "docs", "format", "server-keys.md")
TESTS = os.path.join(ROOT, "tests")
ID = r"[A-Z][0-9]{1,2}"


def _family(words):
    """The lower-case first word of a WHERE column or heading, a plural's "s" dropped."""
    word = re.search(r"[A-Za-z]\w*", words).group(0).lower()
    return word[:-1] if word.endswith("s") and len(word) > 3 else word


def readme_invariants():
    """[(family, ID)] of the README's table of invariants."""
    with open(README, encoding="utf-8") as f:
        text = f.read()
    section = text.split("## Invariants referred to by number", 1)[1].split("\n## ", 1)[0]
    out = []
    for first, last, where in re.findall(rf"^\| ({ID})(?:-({ID}))? \| ([^|]+)\|", section, re.M):
        assert not last or last[0] == first[0], f"a range across families: {first}-{last}"
        for n in range(int(first[1:]), int((last or first)[1:]) + 1):
            out.append((_family(where), f"{first[0]}{n}"))
    return out


def server_key_invariants():
    """[(family, ID)] of server-keys.md's invariant lists: list items that start with an ID
    (`- **L1** —`, `- N1.`, `5. (C1)`), and IDs defined inside an item (`(C2: ...`). The family
    is the heading of the section the list is in."""
    with open(SERVER_KEYS, encoding="utf-8") as f:
        lines = f.read().splitlines()
    out = []
    headings = []            # (level, title) of the open sections, outermost first
    in_list = False
    for line in lines:
        m = re.match(r"(#+)\s+(.*)", line)
        if m:
            level, title = len(m.group(1)), m.group(2)
            headings = [h for h in headings if h[0] < level]
            in_list = title.strip() == "Invariants"
            if not in_list:
                headings.append((level, title))
            continue
        if not in_list:
            continue
        ids = re.findall(rf"^\s*(?:[-*]|\d+\.)\s+(?:\*\*|\()?({ID})\b", line)
        ids += re.findall(rf"\(({ID}):", line)
        for id_ in ids:
            out.append((_family(headings[-1][1]), id_))
    return out


def invariant_keys():
    """The names tests must carry: the ID, or family_ID where two families share its letter."""
    pairs = readme_invariants() + server_key_invariants()
    families = defaultdict(set)
    for family, id_ in pairs:
        families[id_[0]].add(family)
    return {f"{family}_{id_}" if len(families[id_[0]]) > 1 else id_ for family, id_ in pairs}


def names_of_tests():
    """Every test function and method name under tests/."""
    names = set()
    for dirpath, dirnames, filenames in os.walk(TESTS):
        dirnames[:] = [d for d in dirnames if not d.startswith(".") and d != "__pycache__"]
        for name in filenames:
            if name.endswith(".py"):
                with open(os.path.join(dirpath, name), encoding="utf-8") as f:
                    tree = ast.parse(f.read())
                names.update(n.name for n in ast.walk(tree)
                             if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name.startswith("test"))
    return names


def test_the_docs_define_the_invariants_this_test_expects():
    keys = invariant_keys()
    for key in ("P1", "B4", "W3", "M2", "lsm_L1", "lsm_L3", "list_L1", "list_L5", "C2", "N5", "S5", "Z10",
                "G3", "T9", "H6", "F4"):
        assert key in keys, f"{key} not found in docs/format: the parsing in this test needs updating"


def test_every_invariant_has_a_test_named_after_it():
    names = names_of_tests()
    missing = sorted(k for k in invariant_keys() if not any(f"_{k}_" in n for n in names))
    if missing:
        print("invariants without a test named test_<ID>_...:", " ".join(missing))
    assert not missing, f"no test named after {', '.join(missing)} (docs/format/README.md: invariants)"


def test_every_test_named_after_an_invariant_names_one_the_docs_define():
    keys = invariant_keys()
    unknown = []
    for name in sorted(names_of_tests()):
        m = re.match(rf"test_(?:([a-z]+)_)?({ID})_", name)
        if m and (f"{m.group(1)}_{m.group(2)}" if m.group(1) else m.group(2)) not in keys:
            unknown.append(name)
    if unknown:
        print("tests named after no invariant of docs/format:", " ".join(unknown))
    assert not unknown, f"tests named after invariants the docs do not define: {', '.join(unknown)}"
