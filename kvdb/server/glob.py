"""Redis glob patterns (KEYS, SCAN MATCH, PSUBSCRIBE, CONFIG GET, ACL key patterns).

Syntax, as Redis's stringmatchlen has it:
    *       any sequence of bytes (also empty)      ?     any one byte
    [abc]   one of a, b, c    [^abc] none of them   [a-z] a range (ends may be given either way round)
    \\x      the byte x literally (also inside [...])
A '[' with no closing ']' runs to the end of the pattern. Patterns are bytes and
match bytes; matching is anchored at both ends.
"""
import functools
import re

__all__ = ["compile_glob", "glob_match", "literal_prefix"]

_SPECIAL = frozenset(b"*?[\\")


@functools.lru_cache(maxsize=1024)
def compile_glob(pattern: bytes):
    """A compiled regex whose fullmatch() answers whether a subject matches `pattern`."""
    out = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == 0x2A:  # *
            while i + 1 < n and pattern[i + 1] == 0x2A:
                i += 1
            out.append(b".*")
        elif c == 0x3F:  # ?
            out.append(b".")
        elif c == 0x5B:  # [
            i += 1
            negate = i < n and pattern[i] == 0x5E
            if negate:
                i += 1
            members = []
            while i < n and pattern[i] != 0x5D:
                if pattern[i] == 0x5C and i + 1 < n:
                    i += 1
                    members.append((pattern[i], pattern[i]))
                elif i + 2 < n and pattern[i + 1] == 0x2D and pattern[i + 2] != 0x5D:
                    lo, hi = pattern[i], pattern[i + 2]
                    members.append((min(lo, hi), max(lo, hi)))
                    i += 2
                else:
                    members.append((pattern[i], pattern[i]))
                i += 1
            if not members:
                out.append(b"[^\\x00-\\xff]" if not negate else b"[\\x00-\\xff]")
            else:
                body = b"".join(b"\\x%02x-\\x%02x" % (lo, hi) for lo, hi in members)
                out.append(b"[" + (b"^" if negate else b"") + body + b"]")
        elif c == 0x5C and i + 1 < n:  # backslash escape
            i += 1
            out.append(re.escape(pattern[i:i + 1]))
        else:
            out.append(re.escape(pattern[i:i + 1]))
        i += 1
    return re.compile(b"".join(out), re.DOTALL)


def glob_match(pattern: bytes, subject: bytes) -> bool:
    if pattern == b"*":
        return True
    return compile_glob(pattern).fullmatch(subject) is not None


def literal_prefix(pattern: bytes) -> bytes:
    """The bytes every match of `pattern` starts with (lets KEYS and SCAN narrow a range scan)."""
    out = bytearray()
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == 0x5C and i + 1 < len(pattern):
            out.append(pattern[i + 1])
            i += 2
            continue
        if c in _SPECIAL:
            break
        out.append(c)
        i += 1
    return bytes(out)
