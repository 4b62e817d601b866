"""Bitmap commands on string values: SETBIT GETBIT BITCOUNT BITPOS BITOP BITFIELD
BITFIELD_RO.

A bitmap is an ordinary string value (no record kind of its own): bit 0 is the most
significant bit of the first byte, as in Redis. Writers read the value, change it
and write it back whole with keyspace.set_string (keeping the TTL); a string of any
length is one record, so these commands cost one read and at most one write.

Semantics, argument order and error texts follow Redis 7.2 (which checks the key
before the range arguments of BITCOUNT and BITPOS; Redis 8 reversed that). Counting
and searching go through Python integers (int.from_bytes, int.bit_count,
int.bit_length), which run at C speed over the whole range.
"""
import kvdb

from ..keyspace import HEADER
from .registry import NOT_INTEGER, SYNTAX, CommandError, command, int_arg

BIT_OFFSET_ERROR = "ERR bit offset is not an integer or out of range"
BIT_VALUE_ERROR = "ERR bit is not an integer or out of range"
BITFIELD_TYPE_ERROR = ("ERR Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported but "
                       "i64 is.")
# The longest string value the engine stores: its value limit less the meta record's header.
MAX_VALUE = kvdb.MAX_VALUE_SIZE - HEADER
_U64 = (1 << 64) - 1


def _b(**kw):
    return dict(group="bitmap", **kw)


def _i64(x):
    """x reduced to a signed 64-bit integer, as C's two's-complement conversion does."""
    x &= _U64
    return x - (1 << 64) if x >> 63 else x


def bit_offset(c, arg, bits=0):
    """A bit offset argument (BITFIELD passes `bits`, allowing the `#n` form = n*bits)."""
    use_hash = bits > 0 and arg[:1] == b"#"
    n = int_arg(arg[1:] if use_hash else arg, BIT_OFFSET_ERROR)
    if use_hash:
        n *= bits
    if n < 0 or (n >> 3) >= c.server.config["proto-max-bulk-len"]:
        raise CommandError(BIT_OFFSET_ERROR)
    return n


def _grown(value, last_bit):
    """value as a bytearray long enough to address last_bit (zero-padded); the engine's
    limit on a string value is checked here."""
    need = (last_bit >> 3) + 1
    if need > MAX_VALUE:
        raise CommandError(f"ERR bit offset is out of range: kvdb's server stores string values up to {MAX_VALUE} "
                           "bytes")
    buf = bytearray(value or b"")
    if len(buf) < need:
        buf.extend(bytes(need - len(buf)))
    return buf


def _bits_of(value, first, last):
    """(n, width): the bits first..last (inclusive, first <= last < 8*len) as an integer."""
    seg = value[first >> 3:(last >> 3) + 1]
    n = int.from_bytes(seg, "big")
    total = len(seg) * 8
    lead, trail = first & 7, 7 - (last & 7)
    n &= (1 << (total - lead)) - 1
    return n >> trail, total - lead - trail


@command("setbit", 4, "write denyoom", "@bitmap", (1, 1, 1),
         **_b(summary="Sets or clears the bit at offset of the string value. Creates the key if it doesn't exist.",
              since="2.2.0"))
def setbit(c, args):
    offset = bit_offset(c, args[2])
    on = int_arg(args[3], BIT_VALUE_ERROR)
    if on not in (0, 1):
        raise CommandError(BIT_VALUE_ERROR)
    ks = c.server.ks
    value = ks.get_string(c.db, args[1])
    byte, mask = offset >> 3, 0x80 >> (offset & 7)
    old = 1 if value is not None and byte < len(value) and value[byte] & mask else 0
    if value is not None and byte < len(value) and old == on:
        return old  # nothing changes (Redis does not signal the key then)
    buf = _grown(value, offset)
    buf[byte] = (buf[byte] | mask) if on else (buf[byte] & ~mask)
    ks.set_string(c.db, args[1], bytes(buf), keep_ttl=True, event="setbit")
    return old


@command("getbit", 3, "readonly fast", "@bitmap", (1, 1, 1),
         **_b(summary="Returns a bit value by offset.", since="2.2.0"))
def getbit(c, args):
    offset = bit_offset(c, args[2])
    value = c.server.ks.get_string(c.db, args[1])
    byte = offset >> 3
    if value is None or byte >= len(value):
        return 0
    return 1 if value[byte] & (0x80 >> (offset & 7)) else 0


def _unit(arg):
    word = arg.lower()
    if word == b"bit":
        return True
    if word == b"byte":
        return False
    raise CommandError(SYNTAX)


def _clamp(start, end, total):
    """Redis's range normalisation: negative indexes from the end, then clamped."""
    if start < 0:
        start += total
    if end < 0:
        end += total
    start = max(start, 0)
    end = min(max(end, 0), total - 1)
    return start, end


@command("bitcount", -2, "readonly", "@bitmap", (1, 1, 1),
         **_b(summary="Counts the number of set bits (population counting) in a string.", since="2.6.0"))
def bitcount(c, args):
    value = c.server.ks.get_string(c.db, args[1])
    if value is None:
        return 0  # Redis 7: a missing key counts 0 before its arguments are looked at
    if len(args) == 2:
        return int.from_bytes(value, "big").bit_count()
    if len(args) not in (4, 5):
        raise CommandError(SYNTAX)
    start, end = int_arg(args[2]), int_arg(args[3])
    if start < 0 and end < 0 and start > end:
        return 0
    is_bit = _unit(args[4]) if len(args) == 5 else False
    scale = 8 if is_bit else 1
    start, end = _clamp(start, end, len(value) * scale)
    if start > end:
        return 0
    if not is_bit:
        start, end = start * 8, end * 8 + 7
    return _bits_of(value, start, end)[0].bit_count()


@command("bitpos", -3, "readonly", "@bitmap", (1, 1, 1),
         **_b(summary="Finds the first set (1) or clear (0) bit in a string.", since="2.8.7"))
def bitpos(c, args):
    bit = int_arg(args[2])
    if bit not in (0, 1):
        raise CommandError("ERR The bit argument must be 1 or 0.")
    value = c.server.ks.get_string(c.db, args[1])
    if value is None:
        return -1 if bit else 0  # an endless run of 0 bits
    n = len(args)
    end_given = n >= 5
    if n == 3:
        first, last = 0, len(value) * 8 - 1
    elif n <= 6:
        start = int_arg(args[3])
        is_bit = _unit(args[5]) if n == 6 else False
        scale = 8 if is_bit else 1
        end = int_arg(args[4]) if end_given else len(value) * scale - 1
        start, end = _clamp(start, end, len(value) * scale)
        if start > end:
            return -1
        first, last = (start, end) if is_bit else (start * 8, end * 8 + 7)
    else:
        raise CommandError(SYNTAX)
    if first > last:
        return -1
    bits, width = _bits_of(value, first, last)
    if bit == 0:
        bits ^= (1 << width) - 1
    if bits:
        return first + width - bits.bit_length()
    if bit == 0 and not end_given:
        return last + 1  # the string is taken as padded with 0 bits on the right
    return -1


_BITOPS = {b"and": int.__and__, b"or": int.__or__, b"xor": int.__xor__, b"not": None}


@command("bitop", -4, "write denyoom", "@bitmap", (2, -1, 1),
         **_b(summary="Performs bitwise operations on multiple strings, and stores the result.", since="2.6.0"))
def bitop(c, args):
    name = args[1].lower()
    if name not in _BITOPS:
        raise CommandError(SYNTAX)
    if name == b"not" and len(args) != 4:
        raise CommandError("ERR BITOP NOT must be called with a single source key.")
    ks = c.server.ks
    values = [ks.get_string(c.db, k) or b"" for k in args[3:]]
    size = max(len(v) for v in values)
    dest = args[2]
    if size == 0:
        ks.delete(c.db, dest)
        return 0
    if size > MAX_VALUE:  # cannot happen with stored values; kept for the invariant
        raise CommandError(f"ERR string exceeds maximum allowed size ({MAX_VALUE} bytes)")
    ints = [int.from_bytes(v.ljust(size, b"\x00"), "big") for v in values]
    if name == b"not":
        result = ints[0] ^ ((1 << (8 * size)) - 1)
    else:
        op = _BITOPS[name]
        result = ints[0]
        for n in ints[1:]:
            result = op(result, n)
    ks.set_string(c.db, dest, result.to_bytes(size, "big"), event="set")
    return size


# -- BITFIELD -------------------------------------------------------------------------

WRAP, SAT, FAIL = 0, 1, 2
_OVERFLOW = {b"wrap": WRAP, b"sat": SAT, b"fail": FAIL}


class _FieldOp:
    """One GET/SET/INCRBY of a BITFIELD call, parsed."""
    __slots__ = ("op", "signed", "bits", "offset", "arg", "overflow")

    def __init__(self, op, signed, bits, offset, arg, overflow):
        self.op = op              # b"get", b"set" or b"incrby"
        self.signed = signed      # True for iN, False for uN
        self.bits = bits          # field width, 1..64 (signed) or 1..63 (unsigned)
        self.offset = offset      # bit offset of the field's most significant bit
        self.arg = arg            # SET value or INCRBY increment (signed 64-bit); 0 for GET
        self.overflow = overflow  # WRAP, SAT or FAIL, the OVERFLOW in force at this op


def _field_type(arg):
    sign = arg[:1]
    if sign not in (b"i", b"u"):
        raise CommandError(BITFIELD_TYPE_ERROR)
    bits = int_arg(arg[1:], BITFIELD_TYPE_ERROR)
    if bits < 1 or bits > (64 if sign == b"i" else 63):
        raise CommandError(BITFIELD_TYPE_ERROR)
    return sign == b"i", bits


def _parse_bitfield(c, args):
    ops = []
    overflow = WRAP
    i, n = 2, len(args)
    while i < n:
        word = args[i].lower()
        left = n - i - 1
        if word == b"overflow" and left >= 1:
            overflow = _OVERFLOW.get(args[i + 1].lower())
            if overflow is None:
                raise CommandError("ERR Invalid OVERFLOW type specified")
            i += 2
            continue
        if not ((word == b"get" and left >= 2) or (word in (b"set", b"incrby") and left >= 3)):
            raise CommandError(SYNTAX)
        signed, bits = _field_type(args[i + 1])
        offset = bit_offset(c, args[i + 2], bits)
        arg = 0
        if word != b"get":
            arg = int_arg(args[i + 3])
        ops.append(_FieldOp(word, signed, bits, offset, arg, overflow))
        i += 3 if word == b"get" else 4
    return ops


def _get_field(buf, offset, bits, signed):
    byte = offset >> 3
    last = (offset + bits - 1) >> 3
    seg = bytes(buf[byte:last + 1]).ljust(last - byte + 1, b"\x00")
    shift = (last - byte + 1) * 8 - (offset & 7) - bits
    u = (int.from_bytes(seg, "big") >> shift) & ((1 << bits) - 1)
    if signed and u >> (bits - 1):
        u -= 1 << bits
    return u


def _set_field(buf, offset, bits, value):
    byte = offset >> 3
    last = (offset + bits - 1) >> 3
    width = (last - byte + 1) * 8
    shift = width - (offset & 7) - bits
    mask = ((1 << bits) - 1) << shift
    n = int.from_bytes(buf[byte:last + 1], "big")
    n = (n & ~mask) | ((value << shift) & mask)
    buf[byte:last + 1] = n.to_bytes(width // 8, "big")


def _signed_overflow(value, incr, bits, mode):
    """(overflowed, result) of value + incr in a signed field of `bits`, the checks done
    in 64-bit two's-complement arithmetic as Redis does them."""
    top = (1 << 63) - 1 if bits == 64 else (1 << (bits - 1)) - 1
    bottom = -top - 1
    max_incr = _i64(top - value)
    min_incr = _i64(bottom - value)
    if value > top or (bits != 64 and incr > max_incr) or (value >= 0 and incr > 0 and incr > max_incr):
        limit = top
    elif value < bottom or (bits != 64 and incr < min_incr) or (value < 0 and incr < 0 and incr < min_incr):
        limit = bottom
    else:
        return False, value + incr
    if mode == WRAP:
        u = (value + incr) & ((1 << bits) - 1)
        limit = u - (1 << bits) if u >> (bits - 1) else u
    return True, limit


def _unsigned_overflow(value, incr, bits, mode):
    """(overflowed, result) of value + incr in an unsigned field (value is a uint64)."""
    top = (1 << bits) - 1
    max_incr = _i64(top - value)
    min_incr = _i64(-value)
    if value > top or (incr > 0 and incr > max_incr):
        limit = top
    elif incr < 0 and incr < min_incr:
        limit = 0
    else:
        return False, (value + incr) & _U64
    if mode == WRAP:
        limit = (value + incr) & top
    return True, limit


def _bitfield(c, args, readonly_command):
    ops = _parse_bitfield(c, args)
    ks = c.server.ks
    key = args[1]
    writes = [op for op in ops if op.op != b"get"]
    if writes and readonly_command:
        raise CommandError("ERR BITFIELD_RO only supports the GET subcommand")
    value = ks.get_string(c.db, key)
    if not writes:
        buf = value or b""
        return [_get_field(buf, op.offset, op.bits, op.signed) for op in ops]
    buf = _grown(value, max(op.offset + op.bits - 1 for op in writes))
    grew = value is None or len(buf) > len(value)
    changed = False
    out = []
    for op in ops:
        if op.op == b"get":
            out.append(_get_field(buf, op.offset, op.bits, op.signed))
            continue
        old = _get_field(buf, op.offset, op.bits, op.signed)
        if op.signed:
            if op.op == b"incrby":
                over, new = _signed_overflow(old, op.arg, op.bits, op.overflow)
                reply = new
            else:
                over, new = _signed_overflow(op.arg, 0, op.bits, op.overflow)
                reply = old
        else:
            if op.op == b"incrby":
                over, new = _unsigned_overflow(old, op.arg, op.bits, op.overflow)
                reply = new
            else:
                over, new = _unsigned_overflow(op.arg & _U64, 0, op.bits, op.overflow)
                reply = old
        if over and op.overflow == FAIL:
            out.append(None)
            continue
        out.append(_i64(reply))
        _set_field(buf, op.offset, op.bits, new & ((1 << op.bits) - 1))
        if grew or old != new:
            changed = True
    if grew or changed:
        # The padded value is kept even when every write failed (Redis creates the key
        # before running the operations); the key is signalled only when something changed.
        ks.set_string(c.db, key, bytes(buf), keep_ttl=True, event="setbit" if changed else None)
    return out


@command("bitfield", -2, "write denyoom", "@bitmap", (1, 1, 1),
         **_b(summary="Performs arbitrary bitfield integer operations on strings.", since="3.2.0"))
def bitfield(c, args):
    return _bitfield(c, args, False)


@command("bitfield_ro", -2, "readonly fast", "@bitmap", (1, 1, 1),
         **_b(summary="Performs arbitrary read-only bitfield integer operations on strings.", since="6.0.0"))
def bitfield_ro(c, args):
    return _bitfield(c, args, True)


__all__ = ["bit_offset", "MAX_VALUE", "NOT_INTEGER"]
