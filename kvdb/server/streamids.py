"""Stream ids as Redis reads and writes them: "ms-seq" of two unsigned 64-bit numbers,
with Redis's parser quirks (what C's strtoull accepts beyond the strict form), "-"/"+"
and exclusive "(" bounds, and the next/previous id."""
from .commands.registry import CommandError

__all__ = ["MAX_ID", "ZERO_ID", "INVALID_ID", "format_id", "incr_id", "decr_id", "parse_id", "parse_interval"]

MAX = (1 << 64) - 1
ZERO_ID = (0, 0)
MAX_ID = (MAX, MAX)
INVALID_ID = "ERR Invalid stream ID specified as stream command argument"


# -- ids -------------------------------------------------------------------------------

def format_id(id_):
    return b"%d-%d" % id_


def incr_id(id_):
    """The next id, or None after the last possible one."""
    ms, seq = id_
    if seq == MAX:
        return None if ms == MAX else (ms + 1, 0)
    return (ms, seq + 1)


def decr_id(id_):
    """The previous id, or None before 0-0."""
    ms, seq = id_
    if seq == 0:
        return None if ms == 0 else (ms - 1, MAX)
    return (ms, seq - 1)


_SPACE = b" \t\n\v\f\r"


def _string2ll(s):
    """Redis's strict signed parse (no spaces, no '+', no leading zeros), or None."""
    if not s or len(s) >= 21:
        return None
    if s == b"0":
        return 0
    body = s[1:] if s[:1] == b"-" else s
    if not body or not (0x31 <= body[0] <= 0x39) or not body.isdigit():
        return None
    n = int(s)
    return n if -(1 << 63) <= n < (1 << 63) else None


def _string2ull(s):
    """An unsigned 64-bit number as Redis's string2ull reads it: the strict signed form
    when it fits (negative is invalid), else what C's strtoull accepts whole (leading
    spaces, a sign, leading zeros; a '-' negates modulo 2^64). None when invalid."""
    n = _string2ll(s)
    if n is not None:
        return n if n >= 0 else None
    i = 0
    while i < len(s) and s[i] in _SPACE:
        i += 1
    negative = False
    if i < len(s) and s[i] in b"+-":
        negative = s[i] == 0x2D
        i += 1
    digits = s[i:]
    if not digits or not digits.isdigit() or not digits.isascii():
        return None
    n = int(digits)
    if n > MAX:
        return None
    return (-n) % (1 << 64) if negative else n


def parse_id(arg, missing_seq=0, strict=True, seq_star=False):
    """(id, seq_given) of a stream id argument: "ms-seq", "ms" (seq = missing_seq),
    "-"/"+" (the smallest/largest id, not when strict), "ms-*" (only with seq_star:
    seq_given False). Raises the Redis error for anything else."""
    if len(arg) > 127:
        raise CommandError(INVALID_ID)
    nul = arg.find(b"\x00")
    buf = arg if nul < 0 else arg[:nul]     # Redis reads the id as a C string
    if buf == b"-" or buf == b"+":
        if strict:
            raise CommandError(INVALID_ID)
        return (ZERO_ID if buf == b"-" else MAX_ID), True
    dash = buf.find(b"-")
    head = buf if dash < 0 else buf[:dash]
    ms = _string2ull(head)
    if ms is None:
        raise CommandError(INVALID_ID)
    if dash < 0:
        return (ms, missing_seq), True
    tail = buf[dash + 1:]
    if seq_star and tail == b"*":
        return (ms, 0), False
    seq = _string2ull(tail)
    if seq is None:
        raise CommandError(INVALID_ID)
    return (ms, seq), True


def parse_interval(arg, missing_seq):
    """(id, exclusive) of a range bound: "(id" is exclusive (strict id), else as parse_id
    with "-" and "+" allowed."""
    if len(arg) > 1 and arg[:1] == b"(":
        return parse_id(arg[1:], missing_seq, strict=True)[0], True
    return parse_id(arg, missing_seq, strict=False)[0], False
