"""HyperLogLog sketches stored as string values, in Redis's "HYLL" format (byte for byte:
a value written by PFADD on kvdb and on Redis is the same string, so GET/SET move
sketches between the two). docs/format/server-keys.md (HyperLogLog) describes the layout.

    header (16 bytes): "HYLL" | encoding (0 dense, 1 sparse) | 3 zero bytes |
                       cached cardinality (u64 little endian; top bit set = stale)
    dense:  16384 registers of 6 bits, packed from the least significant bit of
            each byte up (12288 bytes)
    sparse: run-length opcodes covering the 16384 registers in order:
            ZERO  00xxxxxx           xxxxxx+1 registers at 0 (1..64)
            XZERO 01xxxxxx yyyyyyyy  (x<<8|y)+1 registers at 0 (1..16384)
            VAL   1vvvvvxx           xx+1 registers (1..4) at vvvvv+1 (1..32)

An element's register index is the low 14 bits of MurmurHash64A(element, seed
0xadc83b19); its value is 1 + the number of trailing zero bits of the other 50 (so
1..51). The estimate is Ertl's improved estimator over the register histogram, as
Redis computes it (same doubles, same rounding), so PFCOUNT replies are Redis's.

Sparse sketches are updated with Redis's own rules (split the opcode covering the
register, merge equal neighbouring VALs within five opcodes, switch to dense past
hll-sparse-max-bytes or for a value above 32) so the bytes match Redis's as well.
Dense registers are unpacked to one byte each with bytes.translate over strided
slices, which keeps whole-sketch work (PFCOUNT, PFMERGE) at C speed.
"""
import math
import random
import struct

P = 14                         # index bits
REGISTERS = 1 << P             # 16384 registers
Q = 64 - P                     # hash bits left for the run of zeros
HEADER_SIZE = 16
DENSE_BYTES = REGISTERS * 6 // 8          # 12288
DENSE_SIZE = HEADER_SIZE + DENSE_BYTES    # 12304
MAGIC = b"HYLL"
DENSE, SPARSE = 0, 1
SEED = 0xADC83B19
SPARSE_VAL_MAX = 32            # largest value a VAL opcode holds
SPARSE_VAL_MAX_LEN = 4
SPARSE_ZERO_MAX_LEN = 64
SPARSE_XZERO_MAX_LEN = 16384
DEFAULT_SPARSE_MAX_BYTES = 3000  # Redis's hll-sparse-max-bytes default
ALPHA_INF = 0.721347520444481703680  # 0.5 / ln 2
NOT_HLL = "WRONGTYPE Key is not a valid HyperLogLog string value."
INVALID_HLL = "INVALIDOBJ Corrupted HLL object detected"

_M = 0xC6A4A7935BD1E995
_MASK64 = (1 << 64) - 1
_ZERO, _XZERO, _VAL = 0, 1, 2  # sparse opcode kinds
_OP_BYTES = (1, 2, 1)


class InvalidHLL(Exception):
    """A sketch whose registers cannot be read (reply INVALID_HLL)."""


class NotHLL(Exception):
    """A string that is not a sketch (reply NOT_HLL)."""


def murmur64a(data, seed=SEED):
    """MurmurHash64A of bytes, reading 8-byte blocks little endian (endian-neutral)."""
    n = len(data)
    h = (seed ^ (n * _M)) & _MASK64
    blocks = n >> 3
    if blocks:
        for k in struct.unpack_from(f"<{blocks}Q", data):
            k = (k * _M) & _MASK64
            k ^= k >> 47
            k = (k * _M) & _MASK64
            h ^= k
            h = (h * _M) & _MASK64
    tail = n & 7
    if tail:
        h ^= int.from_bytes(data[n - tail:], "little")
        h = (h * _M) & _MASK64
    h ^= h >> 47
    h = (h * _M) & _MASK64
    h ^= h >> 47
    return h


def pattern(element):
    """(register index, value) an element sets: value = 1 + trailing zeros of the hash's
    upper 50 bits (bit 50 forced on, so at most 51)."""
    h = murmur64a(element)
    rest = (h >> P) | (1 << Q)
    return h & (REGISTERS - 1), (rest & -rest).bit_length()


# -- dense registers <-> one byte per register ----------------------------------------

def _table(f):
    return bytes(f(b) & 0xFF for b in range(256))


_LOW6 = _table(lambda b: b & 63)
_HIGH2 = _table(lambda b: b >> 6)
_LOW4_UP2 = _table(lambda b: (b & 15) << 2)
_HIGH4 = _table(lambda b: b >> 4)
_LOW2_UP4 = _table(lambda b: (b & 3) << 4)
_HIGH6 = _table(lambda b: b >> 2)
_UP6 = _table(lambda b: b << 6)
_DOWN2 = _table(lambda b: b >> 2)
_UP4 = _table(lambda b: b << 4)
_DOWN4 = _table(lambda b: b >> 4)
_UP2 = _table(lambda b: b << 2)


def _or(a, b):
    """Bytewise OR of two equal-length byte strings whose set bits never overlap."""
    return (int.from_bytes(a, "little") | int.from_bytes(b, "little")).to_bytes(len(a), "little")


def dense_to_raw(regs):
    """16384 register values (one per byte) from 12288 packed bytes: every 3 bytes hold
    4 registers, the first starting at the least significant bit."""
    b0, b1, b2 = regs[0::3], regs[1::3], regs[2::3]
    raw = bytearray(REGISTERS)
    raw[0::4] = b0.translate(_LOW6)
    raw[1::4] = _or(b0.translate(_HIGH2), b1.translate(_LOW4_UP2))
    raw[2::4] = _or(b1.translate(_HIGH4), b2.translate(_LOW2_UP4))
    raw[3::4] = b2.translate(_HIGH6)
    return raw


def raw_to_dense(raw):
    """The packed form of 16384 register values (each below 64)."""
    raw = bytes(raw)
    r0, r1, r2, r3 = raw[0::4], raw[1::4], raw[2::4], raw[3::4]
    out = bytearray(DENSE_BYTES)
    out[0::3] = _or(r0, r1.translate(_UP6))
    out[1::3] = _or(r1.translate(_DOWN2), r2.translate(_UP4))
    out[2::3] = _or(r2.translate(_DOWN4), r3.translate(_UP2))
    return out


def dense_get(regs, i):
    bit = i * 6
    byte, shift = bit >> 3, bit & 7
    v = regs[byte] >> shift
    if shift > 2:
        v |= regs[byte + 1] << (8 - shift)
    return v & 63


def dense_set(regs, i, value):
    bit = i * 6
    byte, shift = bit >> 3, bit & 7
    regs[byte] = (regs[byte] & ~(63 << shift) & 0xFF) | ((value << shift) & 0xFF)
    if shift > 2:
        regs[byte + 1] = (regs[byte + 1] & ~(63 >> (8 - shift)) & 0xFF) | (value >> (8 - shift))


# -- the estimator --------------------------------------------------------------------

def _sigma(x):
    if x == 1.0:
        return math.inf
    y, z = 1.0, x
    while True:
        x *= x
        previous = z
        z += x * y
        y += y
        if previous == z:
            return z


def _tau(x):
    if x == 0.0 or x == 1.0:
        return 0.0
    y, z = 1.0, 1.0 - x
    while True:
        x = math.sqrt(x)
        previous = z
        y *= 0.5
        z -= math.pow(1.0 - x, 2) * y
        if previous == z:
            return z / 3.0


def estimate(histogram):
    """Cardinality from the count of registers per value (Ertl, arXiv:1702.01284)."""
    m = float(REGISTERS)
    z = m * _tau((m - histogram[Q + 1]) / m)
    for j in range(Q, 0, -1):
        z += histogram[j]
        z *= 0.5
    z += m * _sigma(histogram[0] / m)
    e = ALPHA_INF * m * m / z
    return int(math.floor(e + 0.5))  # llroundl: half away from zero (e >= 0)


def raw_histogram(raw):
    return [raw.count(v) for v in range(64)]


# -- the sketch -----------------------------------------------------------------------

class Sketch:
    """A sketch decoded for a command: the header, then dense packed registers or the
    sparse opcode list."""
    __slots__ = ("encoding", "card", "dense", "ops", "sparse_bytes", "cut")

    def __init__(self, encoding, card, dense=None, ops=None, sparse_bytes=0, cut=0):
        self.encoding = encoding          # DENSE or SPARSE
        self.card = bytearray(card)       # the 8 cached-cardinality bytes (little endian, top bit = stale)
        self.dense = dense                # DENSE: bytearray of DENSE_BYTES packed registers
        self.ops = ops                    # SPARSE: list of [kind, value, run length]
        self.sparse_bytes = sparse_bytes  # SPARSE: length of the stored opcodes (header excluded)
        self.cut = cut                    # SPARSE: 1 when the stored value ends inside an XZERO (corrupt):
        #                                   its missing byte reads as 0 and is never written, as in Redis

    @classmethod
    def new(cls):
        """An empty sketch as PFADD creates it: sparse, one XZERO, cached cardinality 0."""
        return cls(SPARSE, bytes(8), ops=[[_XZERO, 0, REGISTERS]], sparse_bytes=2)

    @classmethod
    def parse(cls, value):
        """Raises NotHLL unless value has the header Redis checks (magic, encoding, and
        the exact length of a dense sketch)."""
        if len(value) < HEADER_SIZE or value[:4] != MAGIC or value[4] > SPARSE:
            raise NotHLL()
        encoding = value[4]
        if encoding == DENSE:
            if len(value) != DENSE_SIZE:
                raise NotHLL()
            return cls(DENSE, value[8:16], dense=bytearray(value[HEADER_SIZE:]))
        ops = []
        body = value[HEADER_SIZE:]
        i, n = 0, len(body)
        while i < n:
            b = body[i]
            if b & 0x80:
                ops.append([_VAL, ((b >> 2) & 31) + 1, (b & 3) + 1])
                i += 1
            elif b & 0x40:
                second = body[i + 1] if i + 1 < n else 0  # Redis reads the string's NUL terminator
                ops.append([_XZERO, 0, (((b & 63) << 8) | second) + 1])
                i += 2
            else:
                ops.append([_ZERO, 0, (b & 63) + 1])
                i += 1
        cut = i - n
        return cls(SPARSE, value[8:16], ops=ops, sparse_bytes=sum(_OP_BYTES[op[0]] for op in ops) - cut, cut=cut)

    def encode(self):
        header = MAGIC + bytes((self.encoding, 0, 0, 0)) + bytes(self.card)
        if self.encoding == DENSE:
            return header + bytes(self.dense)
        out = bytearray()
        for kind, value, run in self.ops:
            if kind == _VAL:
                out.append(0x80 | ((value - 1) << 2) | (run - 1))
            elif kind == _XZERO:
                out += bytes((0x40 | ((run - 1) >> 8), (run - 1) & 0xFF))
            else:
                out.append(run - 1)
        if self.cut:
            del out[-self.cut:]
        return header + bytes(out)

    # -- cached cardinality ----------------------------------------------------------

    def cached(self):
        """The cached cardinality, or None when stale."""
        if self.card[7] & 0x80:
            return None
        return int.from_bytes(self.card, "little")

    def set_cache(self, n):
        self.card[:] = n.to_bytes(8, "little")

    def invalidate(self):
        self.card[7] |= 0x80

    # -- registers -----------------------------------------------------------------------

    def raw(self):
        """The 16384 register values, one per byte; InvalidHLL for a sparse sketch whose
        runs do not cover exactly 16384 registers."""
        if self.encoding == DENSE:
            return dense_to_raw(self.dense)
        raw = bytearray(REGISTERS)
        i = 0
        for kind, value, run in self.ops:
            if kind == _VAL:
                if i + run > REGISTERS:
                    raise InvalidHLL()
                raw[i:i + run] = bytes((value,)) * run
            i += run
        if i != REGISTERS:
            raise InvalidHLL()
        return raw

    def histogram(self):
        if self.encoding == DENSE:
            return raw_histogram(dense_to_raw(self.dense))
        histogram = [0] * 64
        i = 0
        for kind, value, run in self.ops:
            histogram[value] += run   # zero runs have value 0
            i += run
        if i != REGISTERS:
            raise InvalidHLL()
        return histogram

    def count(self):
        return estimate(self.histogram())

    def merge_into(self, raw):
        """raw[i] = max(raw[i], register i) for every register."""
        if self.encoding == DENSE:
            mine = dense_to_raw(self.dense)
            raw[:] = bytes(map(max, raw, mine))
            return
        i = 0
        for kind, value, run in self.ops:
            if kind == _VAL:
                if i + run > REGISTERS:
                    raise InvalidHLL()
                for j in range(i, i + run):
                    if value > raw[j]:
                        raw[j] = value
            i += run
        if i != REGISTERS:
            raise InvalidHLL()

    def to_dense(self):
        """Switches a sparse sketch to the dense encoding (header kept)."""
        if self.encoding == DENSE:
            return False
        self.dense = raw_to_dense(self.raw())
        self.encoding, self.ops, self.sparse_bytes, self.cut = DENSE, None, 0, 0
        return True

    def add(self, element, sparse_max_bytes=DEFAULT_SPARSE_MAX_BYTES):
        """Adds an element; True when a register grew."""
        index, value = pattern(element)
        return self.set_register(index, value, sparse_max_bytes)

    def set_register(self, index, value, sparse_max_bytes=DEFAULT_SPARSE_MAX_BYTES):
        """Raises register `index` to `value` if below it; True when it grew."""
        if self.encoding == SPARSE:
            if value <= SPARSE_VAL_MAX:
                return self._sparse_set(index, value, sparse_max_bytes)
            self.to_dense()  # a VAL opcode holds values up to 32
        if value > dense_get(self.dense, index):
            dense_set(self.dense, index, value)
            return True
        return False

    def _sparse_set(self, index, value, sparse_max_bytes):
        """Redis's in-place sparse update. Returns False when the register is already at
        least `value`; promotes to dense (and sets it there) when the sparse form would
        pass sparse_max_bytes."""
        ops = self.ops
        first = 0
        at = -1
        for k, op in enumerate(ops):
            if index <= first + op[2] - 1:
                at = k
                break
            first += op[2]
        if at < 0:
            raise InvalidHLL()
        kind, current, run = ops[at]
        if kind == _VAL and current >= value:
            return False
        if (kind == _VAL or kind == _ZERO) and run == 1:
            ops[at] = [_VAL, value, 1]
        else:
            last = first + run - 1
            seq = []
            if kind == _VAL:
                if index != first:
                    seq.append([_VAL, current, index - first])
                seq.append([_VAL, value, 1])
                if index != last:
                    seq.append([_VAL, current, last - index])
            else:
                if index != first:
                    n = index - first
                    seq.append([_XZERO if n > SPARSE_ZERO_MAX_LEN else _ZERO, 0, n])
                seq.append([_VAL, value, 1])
                if index != last:
                    n = last - index
                    seq.append([_XZERO if n > SPARSE_ZERO_MAX_LEN else _ZERO, 0, n])
            delta = sum(_OP_BYTES[op[0]] for op in seq) - _OP_BYTES[kind]
            if delta > 0 and HEADER_SIZE + self.sparse_bytes + delta > sparse_max_bytes:
                self.to_dense()
                dense_set(self.dense, index, value)
                return True
            ops[at:at + 1] = seq
            self.sparse_bytes += delta
        # Merge equal neighbouring VALs, scanning up to five opcodes from the one before.
        k = at - 1 if at > 0 else 0
        budget = 5
        while k < len(ops) and budget > 0:
            budget -= 1
            if ops[k][0] != _VAL:
                k += 1
                continue
            if k + 1 < len(ops) and ops[k + 1][0] == _VAL and ops[k + 1][1] == ops[k][1] \
                    and ops[k][2] + ops[k + 1][2] <= SPARSE_VAL_MAX_LEN:
                ops[k + 1][2] += ops[k][2]
                del ops[k]
                self.sparse_bytes -= 1
                continue
            k += 1
        return True

    def describe(self):
        """PFDEBUG DECODE's text for a sparse sketch."""
        words = []
        for kind, value, run in self.ops:
            if kind == _VAL:
                words.append(f"v:{value},{run}")
            elif kind == _XZERO:
                words.append(f"Z:{run}")
            else:
                words.append(f"z:{run}")
        return " ".join(words)


def self_test():
    """PFSELFTEST: dense register access and the packing round trip; raises on failure."""
    rng = random.Random(1234)
    regs = bytearray(DENSE_BYTES)
    values = [rng.randrange(64) for _ in range(REGISTERS)]
    for i, v in enumerate(values):
        dense_set(regs, i, v)
    for i, v in enumerate(values):
        if dense_get(regs, i) != v:
            raise AssertionError(f"TESTFAILED Register error at {i}")
    if list(dense_to_raw(regs)) != values or raw_to_dense(bytes(values)) != regs:
        raise AssertionError("TESTFAILED packing round trip")
    sketch = Sketch.new()
    for n in range(1, 20001):
        sketch.add(b"%d" % n)
        if n in (10, 100, 1000, 10000, 20000):
            error = abs(sketch.count() - n) / n
            if error > 0.05 and n > 100:
                raise AssertionError(f"TESTFAILED estimate {sketch.count()} for {n}")
