"""Sorted-set scores: their sortable byte form (the score index's key order), their
text as Redis 7.2 prints it, and their parsing as Redis reads ZADD scores (string2d)
and range bounds (strtod). Used by zsetstore.py, the sorted-set commands and GEO."""
import math
import re
import struct

__all__ = ["INF", "NINF", "encode_score", "decode_score", "sortable", "score_of_key", "after_score", "format_score",
           "parse_score", "parse_range_score"]

INF = float("inf")
NINF = float("-inf")

_D = struct.Struct(">d")
_Q = struct.Struct(">Q")


def encode_score(score):
    return _D.pack(score)


def decode_score(raw):
    return _D.unpack(raw)[0]


_INVERT = bytes(255 - b for b in range(256))
_HIGH = [bytes((b ^ 0x80,)) for b in range(256)]


def sortable(score):
    """8 bytes ordered as the scores are (-0.0 as 0.0): the double's bytes with the
    sign bit set for a positive one, every bit inverted for a negative one."""
    raw = _D.pack(score + 0.0)          # -0.0 + 0.0 is 0.0
    first = raw[0]
    if first & 0x80:
        return raw.translate(_INVERT)
    return _HIGH[first] + raw[1:]


def score_of_key(key, offset=0):
    """The score of an element key (or of a score-index record key at offset)."""
    first = key[offset]
    if first & 0x80:
        return _D.unpack(_HIGH[first] + key[offset + 1:offset + 8])[0]
    return _D.unpack(key[offset:offset + 8].translate(_INVERT))[0]


def after_score(score):
    """The smallest element key above every element of this score."""
    return _Q.pack(_Q.unpack(sortable(score))[0] + 1)


_LLONG_HALF = float((2 ** 63 - 1) // 2)


def format_score(x):
    """A score as Redis 7.2 prints it (d2string): integers below 2^62 as integers,
    others in the shortest round-trip digits, in plain notation when the exponent
    is small and as d.ddde+N otherwise."""
    if x.is_integer():
        if x == 0:
            return b"-0" if math.copysign(1.0, x) < 0 else b"0"
        if -_LLONG_HALF <= x <= _LLONG_HALF:
            return b"%d" % x
    elif x != x:
        return b"nan"
    elif x == INF:
        return b"inf"
    elif x == NINF:
        return b"-inf"
    neg = x < 0
    text = repr(abs(x))                   # shortest round-trip digits
    mantissa, _, exp = text.partition("e")
    whole, _, frac = mantissa.partition(".")
    digits = (whole + frac).lstrip("0")
    k = (int(exp) if exp else 0) - len(frac)        # value = digits * 10^k
    stripped = digits.rstrip("0")
    k += len(digits) - len(stripped)
    digits = stripped
    nd = len(digits)
    e10 = abs(k + nd - 1)
    if k >= 0 and e10 < nd + 7:
        out = digits + "0" * k
    elif k < 0 and (k > -7 or e10 < 4):
        offset = nd + k
        if offset <= 0:
            out = "0." + "0" * -offset + digits
        else:
            out = digits[:offset] + "." + digits[offset:]
    else:
        out = digits[0] + ("." + digits[1:] if nd > 1 else "") + "e" + ("-" if k + nd - 1 < 0 else "+") + str(e10)
    return (("-" if neg else "") + out).encode()


def _strtod(text, strict=True):
    """C strtod over a whole ASCII string (no whitespace): the value, or None when the
    text is not a number, or (strict) it overflows or a non-zero value underflows to 0
    (errno ERANGE, which string2d refuses and the range parser ignores)."""
    low = text.lower()
    body = low.lstrip("+-")
    if len(low) - len(body) > 1:
        return None
    neg = low.startswith("-")
    if body in ("inf", "infinity"):
        return NINF if neg else INF
    if body.startswith("0x"):
        try:
            value = float.fromhex(low)
        except (ValueError, OverflowError):
            return None
    else:
        if not body or any(ch not in "0123456789.e+-" for ch in body):
            return None
        try:
            value = float(low)
        except ValueError:
            return None
        mant = body.partition("e")[0]
        if strict and value == 0 and any(ch in "123456789" for ch in mant):
            return None                       # underflow (ERANGE)
    if value != value or (strict and value in (INF, NINF)):
        return None                           # overflow (ERANGE)
    return value


# Plain decimals (an optional sign, up to 17 digits, an optional fraction of up to 17)
# read the same with Python's float as with C's strtod (both round correctly) and can
# neither overflow nor underflow: the common scores skip the general parser.
_PLAIN = re.compile(rb"[-+]?[0-9]{1,17}(?:\.[0-9]{0,17})?")
_plain = _PLAIN.fullmatch


def parse_score(raw):
    """A score argument as Redis reads it (string2d): None when invalid (empty,
    spaces, NaN, out of range). -0 becomes 0."""
    if _plain(raw) is not None:
        return float(raw) + 0.0
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        return None
    if not text or text[0].isspace() or text[-1].isspace() or "_" in text:
        return None
    value = _strtod(text)
    if value is None:
        return None
    return value + 0.0


def parse_range_score(raw):
    """A ZRANGEBYSCORE bound (after any '('), as Redis reads it with strtod: leading
    spaces are skipped and an empty string is 0. None when invalid."""
    try:
        text = raw.decode("ascii").lstrip(" \t\n\v\f\r")
    except UnicodeDecodeError:
        return None
    if not text:
        return 0.0
    if text[-1].isspace() or "_" in text:
        return None
    value = _strtod(text, strict=False)
    return None if value is None else value + 0.0
