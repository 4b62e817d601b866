"""HyperLogLog commands: PFADD PFCOUNT PFMERGE, and PFDEBUG/PFSELFTEST.

A sketch is a string value in Redis's HYLL format (kvdb/server/hll.py,
docs/format/server-keys.md (HyperLogLog)): one record, read and written whole (at most 12304
bytes), so each command costs one engine read per key and at most one write.
Like Redis, PFCOUNT of a single key stores the computed cardinality in the sketch's
header (a write by a read-only command), so the next PFCOUNT is a header read.
"""
from kvdb.server.protocol.resp import OK, Status

from .. import hll
from .registry import CommandError, command


def _p(**kw):
    return dict(group="hyperloglog", **kw)


def _sparse_max(c):
    return c.server.config.values.get("hll-sparse-max-bytes", hll.DEFAULT_SPARSE_MAX_BYTES)


def _sketch(value):
    try:
        return hll.Sketch.parse(value)
    except hll.NotHLL:
        raise CommandError(hll.NOT_HLL) from None


def _save(c, key, sketch, event):
    c.server.ks.set_string(c.db, key, sketch.encode(), keep_ttl=True, event=event)
    if event is None:
        c.server.key_changed(c.db, key, None)  # WATCH sees the change, as Redis signals it


@command("pfadd", -2, "write denyoom fast", "@hyperloglog", (1, 1, 1),
         **_p(summary="Adds elements to a HyperLogLog key. Creates the key if it doesn't exist.", since="2.8.9"))
def pfadd(c, args):
    key = args[1]
    value = c.server.ks.get_string(c.db, key)
    if value is None:
        sketch, updated = hll.Sketch.new(), True
    else:
        sketch, updated = _sketch(value), False
    limit = _sparse_max(c)
    try:
        for element in args[2:]:
            if sketch.add(element, limit):
                updated = True
    except hll.InvalidHLL:
        raise CommandError(hll.INVALID_HLL) from None
    if not updated:
        return 0
    sketch.invalidate()
    _save(c, key, sketch, "pfadd")
    return 1


@command("pfcount", -2, "readonly", "@hyperloglog", (1, -1, 1),
         **_p(summary="Returns the approximated cardinality of the set(s) observed by the HyperLogLog key(s).",
              since="2.8.9"))
def pfcount(c, args):
    ks = c.server.ks
    try:
        if len(args) > 2:
            raw = bytearray(hll.REGISTERS)
            for key in args[1:]:
                value = ks.get_string(c.db, key)
                if value is not None:
                    _sketch(value).merge_into(raw)
            return hll.estimate(hll.raw_histogram(raw))
        key = args[1]
        value = ks.get_string(c.db, key)
        if value is None:
            return 0
        sketch = _sketch(value)
        card = sketch.cached()
        if card is None:
            card = sketch.count()
            sketch.set_cache(card)
            _save(c, key, sketch, None)
        return card
    except hll.InvalidHLL:
        raise CommandError(hll.INVALID_HLL) from None


@command("pfmerge", -2, "write denyoom", "@hyperloglog", (1, -1, 1),
         **_p(summary="Merges one or more HyperLogLog values into a single key.", since="2.8.9"))
def pfmerge(c, args):
    ks = c.server.ks
    raw = bytearray(hll.REGISTERS)
    dense = False
    dest = None
    try:
        for i, key in enumerate(args[1:]):
            value = ks.get_string(c.db, key)
            if value is None:
                continue
            sketch = _sketch(value)
            if i == 0:
                dest = sketch
            dense = dense or sketch.encoding == hll.DENSE
            sketch.merge_into(raw)
        if dest is None:
            dest = hll.Sketch.new()
        if dense:
            dest.to_dense()
        limit = _sparse_max(c)
        for i in range(hll.REGISTERS):
            if raw[i]:
                dest.set_register(i, raw[i], limit)
    except hll.InvalidHLL:
        raise CommandError(hll.INVALID_HLL) from None
    dest.invalidate()
    _save(c, args[1], dest, "pfadd")  # Redis signals PFMERGE as "pfadd"
    return OK


@command("pfdebug", 3, "write denyoom admin", "@hyperloglog", (2, 2, 1),
         **_p(summary="Internal commands for debugging HyperLogLog values.", since="2.8.9"))
def pfdebug(c, args):
    sub = args[1].lower()
    key = args[2]
    value = c.server.ks.get_string(c.db, key)
    if value is None:
        raise CommandError("ERR The specified key does not exist")
    sketch = _sketch(value)
    try:
        if sub == b"getreg":
            if sketch.to_dense():
                _save(c, key, sketch, None)
            return list(sketch.raw())
        if sub == b"decode":
            if sketch.encoding != hll.SPARSE:
                raise CommandError("ERR HLL encoding is not sparse")
            return Status(sketch.describe())
        if sub == b"encoding":
            return Status("dense" if sketch.encoding == hll.DENSE else "sparse")
        if sub == b"todense":
            converted = sketch.to_dense()
            if converted:
                _save(c, key, sketch, None)
            return 1 if converted else 0
    except hll.InvalidHLL:
        raise CommandError(hll.INVALID_HLL) from None
    raise CommandError(f"ERR Unknown PFDEBUG subcommand '{args[1].decode('utf-8', 'replace')}'")


@command("pfselftest", 1, "admin", "@hyperloglog", (0, 0, 0),
         **_p(summary="An internal command for testing HyperLogLog values.", since="2.8.9"))
def pfselftest(c, args):
    try:
        hll.self_test()
    except AssertionError as e:
        raise CommandError(str(e)) from None
    return OK
