"""Geo: kvdb/server/geohash.py against a reference redis-server (scores, GEOPOS text,
GEOHASH strings, GEODIST, and the candidate cells and order of GEOSEARCH), then the
GEO commands of kvdb serve against redis-server in RESP2 and RESP3."""
import bisect
import random

import pytest

from kvdb.server import geohash as g
from tests.redisref import redis_reference

redis = pytest.importorskip("redis")


class Raw:
    """A redis-server connection whose replies are not converted (RESP2)."""

    def __init__(self, port):
        self.client = redis.Redis(host="127.0.0.1", port=port, protocol=2, socket_timeout=10)
        self.conn = self.client.connection_pool.get_connection()

    def __call__(self, *args):
        self.conn.send_command(*args)
        try:
            return self.conn.read_response()
        except redis.ResponseError as e:
            return ("error", str(e))

    def close(self):
        self.client.connection_pool.release(self.conn)
        self.client.close()


@pytest.fixture(scope="module")
def ref(tmp_path_factory):
    with redis_reference(str(tmp_path_factory.mktemp("georef"))) as port:
        raw = Raw(port)
        yield raw
        raw.close()


SPECIAL = [(-180, 0), (180, 0), (0, 85.05112878), (0, -85.05112878), (180, 85.05112878), (-180, -85.05112878),
           (0, 0), (13.361389, 38.115556), (15.087269, 37.502669), (1e-9, -1e-9), (179.9999999, 85), (-0.0, -0.0)]


def _points(rng, n):
    pts = list(SPECIAL)
    while len(pts) < n:
        if rng.random() < 0.5:
            pts.append((rng.uniform(-180, 180), rng.uniform(g.LAT_MIN, g.LAT_MAX)))
        else:
            pts.append((13.4 + rng.gauss(0, 0.5), 52.5 + rng.gauss(0, 0.3)))
    return pts


def test_math_matches_redis(ref):
    """Scores, GEOPOS text, GEOHASH and GEODIST (all units) equal redis-server's."""
    ref("FLUSHALL")
    rng = random.Random(1)
    pts = _points(rng, 400)
    scores = []
    for i, (lon, lat) in enumerate(pts):
        ref("GEOADD", "g", repr(lon), repr(lat), f"m{i}")
        score = g.score_of(lon, lat)
        scores.append(score)
        assert float(ref("ZSCORE", "g", f"m{i}")) == score, (lon, lat)
        lon2, lat2 = g.decode(score)
        assert ref("GEOPOS", "g", f"m{i}") == [[g.format_coordinate(lon2), g.format_coordinate(lat2)]], (lon, lat)
        assert ref("GEOHASH", "g", f"m{i}") == [g.geohash_string(score).encode()]
    for _ in range(300):
        a, b = rng.sample(range(len(pts)), 2)
        (la, pa), (lb, pb) = g.decode(scores[a]), g.decode(scores[b])
        for unit in (b"m", b"km", b"mi", b"ft"):
            want = ref("GEODIST", "g", f"m{a}", f"m{b}", unit)
            assert want == g.format_distance(g.distance(la, pa, lb, pb) / g.UNITS[unit])
    for bad in [(180.0001, 0), (-180.0001, 0), (0, 85.0512), (0, -85.06)]:
        assert g.score_of(*bad) is None
        assert ref("GEOADD", "g", repr(bad[0]), repr(bad[1]), "x")[0] == "error"


def _simulate(items, shape, count=None, any_=False, sort=None):
    """GEOSEARCH over a sorted list of (score, member), through search_ranges."""
    scores = [s for s, _ in items]
    out = []
    limit = count if any_ else 0
    for lo, hi in g.search_ranges(shape):
        if limit and len(out) >= limit:
            break
        i = bisect.bisect_left(scores, lo)
        while i < len(items) and items[i][0] < hi:
            hit = shape.contains(items[i][0])
            if hit:
                out.append((hit[2], items[i][1]))
            if limit and len(out) >= limit:
                break
            i += 1
    if count and not sort and not any_:
        sort = "ASC"
    if sort:
        out.sort(key=lambda t: t[0], reverse=sort == "DESC")
    return [m for _, m in out[:count] if True] if count else [m for _, m in out]


def test_G2_search_cells_and_order_match_redis(ref):
    """G2: the same members in the same order as redis-server's GEOSEARCH, unsorted too (the
    order then is the order of the cells scanned)."""
    ref("FLUSHALL")
    rng = random.Random(2)
    items = []
    for i, (lon, lat) in enumerate(_points(rng, 1500)):
        m = b"m%d" % i
        ref("GEOADD", "g", repr(lon), repr(lat), m)
        items.append((g.score_of(lon, lat), m))
    items.sort()
    for _ in range(150):
        lon = rng.choice([13.4 + rng.gauss(0, 0.5), rng.uniform(-180, 180)])
        lat = rng.choice([52.5 + rng.gauss(0, 0.3), rng.uniform(-85, 85)])
        unit = rng.choice(["m", "km", "mi", "ft"])
        conv = g.UNITS[unit.encode()]
        if rng.random() < 0.5:
            radius = rng.choice([0, 1, 100, 5000, 50000, 500000, 5000000, 20000000]) / conv * rng.uniform(0.5, 2)
            shape = g.Shape(lon, lat, conv, radius=radius)
            by = ["BYRADIUS", repr(radius), unit]
        else:
            w = rng.choice([100, 5000, 50000, 500000, 5000000]) / conv * rng.uniform(0.5, 2)
            h = rng.choice([100, 5000, 50000, 500000, 5000000]) / conv * rng.uniform(0.5, 2)
            shape = g.Shape(lon, lat, conv, width=w, height=h)
            by = ["BYBOX", repr(w), repr(h), unit]
        sort = rng.choice([None, "ASC", "DESC"])
        count = rng.choice([None, None, 1, 5, 50])
        any_ = count is not None and rng.random() < 0.3
        args = ["GEOSEARCH", "g", "FROMLONLAT", repr(lon), repr(lat)] + by
        if sort:
            args.append(sort)
        if count:
            args += ["COUNT", count] + (["ANY"] if any_ else [])
        assert ref(*args) == _simulate(items, shape, count, any_, sort), args


def test_neighbours_wrap_and_steps():
    step = 3
    bits = g.encode(0.0, 0.0, step)
    n = g.neighbours(bits, step)
    assert len(set(n)) == 8 and bits not in n
    # Moving east then west returns to the cell; the east-most cell wraps to the west-most.
    east = g.neighbours(bits, step)[2]
    assert g.neighbours(east, step)[3] == bits
    edge = g.encode(179.9, 0.0, step)
    assert g.cell(g.neighbours(edge, step)[2], step)[0] == -180.0
    assert g.estimate_step(0, 0) == 26
    assert g.estimate_step(1, 0) == 24 and g.estimate_step(1, 70) == 23 and g.estimate_step(1, -85) == 22
    assert g.estimate_step(1e9, 0) == 1


def test_formats():
    assert g.format_coordinate(13.361389338970184) == b"13.36138933897018433"
    assert g.format_coordinate(180.0) == b"180"
    assert g.format_coordinate(-0.0) == b"0"
    assert g.format_distance(166274.15156960033) == b"166274.1516"
    assert g.format_distance(0.0) == b"0.0000"
    assert g.geohash_string(g.score_of(13.361389, 38.115556)) == "sqc8b49rny0"


# -- the commands against redis-server -------------------------------------------------------



@pytest.fixture
def clean(pair):
    pair.flush()


SICILY = ["13.361389", "38.115556", "Palermo", "15.087269", "37.502669", "Catania"]


def test_G1_geoadd(pair, clean):
    """G1: GEOADD writes each member with redis-server's score, the integer 52-bit geohash
    (compared through ZRANGE WITHSCORES)."""
    pair.same("GEOADD", "Sicily", *SICILY)
    pair.same("GEOADD", "Sicily", *SICILY)
    pair.same("ZRANGE", "Sicily", 0, -1, "WITHSCORES")
    pair.same("GEOADD", "Sicily", "CH", "13.361389", "38.115556", "Palermo", "13.5", "38.1", "Catania",
              "12", "37.8", "Marsala")
    pair.same("GEOADD", "Sicily", "NX", "CH", "1", "2", "Palermo", "14", "38", "Cefalu")
    pair.same("GEOADD", "Sicily", "XX", "CH", "1", "2", "Palermo", "14", "38", "Messina")
    pair.same("GEOADD", "Sicily", "xx", "14.1", "38", "Cefalu")
    pair.same("GEOADD", "Sicily", "ch", "xx", "14.2", "38", "Cefalu", "14.2", "38", "Cefalu")
    pair.same("ZRANGE", "Sicily", 0, -1, "WITHSCORES")
    pair.same("GEOADD", "missing", "XX", "1", "2", "a")
    pair.same("EXISTS", "missing")
    pair.same("GEOADD", "dup", "1", "2", "a", "3", "4", "a")
    pair.same("ZRANGE", "dup", 0, -1, "WITHSCORES")
    pair.same("GEOADD", "edge", "-180", "-85.05112878", "sw", "180", "85.05112878", "ne", "0", "0", "zero",
              "-0", "-0", "negzero", "1e-10", "1E1", "sci", "0x10", "10", "hex", "+5", "5", "plus")
    pair.same("ZRANGE", "edge", 0, -1, "WITHSCORES")
    pair.same("TYPE", "edge")
    for bad in [("k", "NX", "XX", "1", "2", "a"), ("k", "1", "2"), ("k", "1", "2", "a", "3"), ("k", "NX", "CH", "a"),
                ("k", "181", "0", "a"), ("k", "0", "86", "a"), ("k", "-180.5", "-86", "a"), ("k", "x", "0", "a"),
                ("k", "0", "y", "a"), ("k", "GT", "1", "2", "a"), ("k", "nan", "0", "a"), ("k", "inf", "0", "a"),
                ("k", " 1", "0", "a"), ("k", "", "0", "a")]:
        pair.same_error("GEOADD", *bad)
    pair.same_error("GEOADD", "k", "1", "2")
    pair.same("SET", "str", "x")
    pair.same_error("GEOADD", "str", "1", "2", "a")
    pair.same("EXISTS", "k")


def test_geopos_geohash_geodist(pair, clean):
    pair.same("GEOADD", "Sicily", *SICILY, "-122.27652", "37.805186", "Oakland", "0", "0", "Null")
    pair.same("GEOPOS", "Sicily", "Palermo", "Catania", "NonExisting", "Oakland", "Null")
    pair.same("GEOPOS", "Sicily")
    pair.same("GEOPOS", "missing", "a", "b")
    pair.same("GEOHASH", "Sicily", "Palermo", "Catania", "nope", "Oakland", "Null")
    pair.same("GEOHASH", "missing", "a")
    pair.same("GEOHASH", "Sicily")
    for unit in ([], ["m"], ["km"], ["mi"], ["ft"], ["KM"], ["Mi"]):
        pair.same("GEODIST", "Sicily", "Palermo", "Catania", *unit)
        pair.same("GEODIST", "Sicily", "Palermo", "Oakland", *unit)
    pair.same("GEODIST", "Sicily", "Palermo", "Palermo")
    pair.same("GEODIST", "Sicily", "Palermo", "nope")
    pair.same("GEODIST", "missing", "a", "b")
    pair.same("GEODIST", "missing", "a", "b", "km")
    pair.same_error("GEODIST", "Sicily", "Palermo", "Catania", "parsec")
    pair.same_error("GEODIST", "missing", "a", "b", "parsec")
    pair.same_error("GEODIST", "Sicily", "Palermo", "Catania", "km", "extra")
    pair.same_error("GEODIST", "Sicily", "Palermo")
    # Scores GEOADD would never write.
    pair.same("ZADD", "plain", "-5", "neg", "1.5", "frac", "1e300", "huge", "-1e300", "nhuge", "inf", "inf",
              "1.8446744073709552e19", "big", "9.3e18", "top")
    members = ["neg", "frac", "huge", "nhuge", "inf", "big", "top"]
    pair.same("GEOPOS", "plain", *members)
    pair.same("GEOHASH", "plain", *members)
    pair.same("GEODIST", "plain", "neg", "top")
    pair.same("SET", "str", "x")
    for cmd in ("GEOPOS", "GEOHASH"):
        pair.same_error(cmd, "str", "a")
    pair.same_error("GEODIST", "str", "a", "b")


def _searches(rng, with_store=False):
    """Random GEOSEARCH argument tails over the Berlin cluster and the globe."""
    out = []
    for _ in range(60):
        if rng.random() < 0.3:
            origin = ["FROMMEMBER", f"m{rng.randrange(40)}"]
        else:
            origin = ["FROMLONLAT", repr(rng.choice([13.4 + rng.gauss(0, 0.3), rng.uniform(-180, 180)])),
                      repr(rng.choice([52.5 + rng.gauss(0, 0.2), rng.uniform(-80, 80)]))]
        unit = rng.choice(["m", "km", "mi", "ft", "KM"])
        if rng.random() < 0.5:
            by = ["BYRADIUS", str(rng.choice([0, 10, 500, 5000, 20000, 100000, 3000000, 30000000]) /
                                 gh_units(unit)), unit]
        else:
            by = ["BYBOX", str(rng.choice([100, 5000, 40000, 1000000]) / gh_units(unit)),
                  str(rng.choice([100, 5000, 40000, 1000000]) / gh_units(unit)), unit]
        opts = []
        if rng.random() < 0.5:
            opts.append(rng.choice(["ASC", "DESC"]))
        if rng.random() < 0.4:
            opts += ["COUNT", str(rng.choice([1, 3, 10, 1000]))]
            if rng.random() < 0.3:
                opts.append("ANY")
        if not with_store:
            for w in ("WITHCOORD", "WITHDIST", "WITHHASH"):
                if rng.random() < 0.3:
                    opts.append(w)
        parts = [origin, by, opts]
        rng.shuffle(parts)
        out.append([a for p in parts for a in p])
    return out


def same_zset(pair, key):
    """The same members and scores (scores compared as numbers: the text of a
    non-integer ZRANGE score is the sorted-set code's concern, not geo's)."""
    got, want = pair.both("ZRANGE", key, 0, -1, "WITHSCORES")
    assert got[0] == want[0] == "ok", (got, want)

    def pairs(reply):
        if reply and isinstance(reply[0], list):
            return [(m, float(s)) for m, s in reply]
        return [(reply[i], float(reply[i + 1])) for i in range(0, len(reply), 2)]
    assert pairs(got[1]) == pairs(want[1]), key


def gh_units(unit):
    return g.UNITS[unit.lower().encode()]


def _load_points(pair, rng, n=300):
    args = []
    for i in range(n):
        if i % 4 == 0:
            lon, lat = rng.uniform(-180, 180), rng.uniform(-85, 85)
        else:
            lon, lat = 13.4 + rng.gauss(0, 0.3), 52.5 + rng.gauss(0, 0.2)
        args += [repr(lon), repr(lat), f"m{i}"]
    pair.same("GEOADD", "pts", *args)


def test_G3_geosearch_randomized(pair, clean):
    """G3 for GEOSEARCHSTORE: the destination is the sorted set redis-server writes, with
    geohash scores or (STOREDIST) distances, and no expiry."""
    rng = random.Random(5)
    _load_points(pair, rng)
    for tail in _searches(rng):
        pair.same("GEOSEARCH", "pts", *tail)
    for tail in _searches(rng, with_store=True):
        if rng.random() < 0.5:
            tail = tail + ["STOREDIST"]
        pair.same("GEOSEARCHSTORE", "dst", "pts", *tail)
        same_zset(pair, "dst")
        pair.same("TTL", "dst")


def test_georadius_randomized(pair, clean):
    rng = random.Random(6)
    _load_points(pair, rng, 200)
    for _ in range(40):
        unit = rng.choice(["m", "km", "mi"])
        radius = str(rng.choice([10, 5000, 20000, 200000, 30000000]) / gh_units(unit))
        opts = []
        for w in ("WITHCOORD", "WITHDIST", "WITHHASH"):
            if rng.random() < 0.3:
                opts.append(w)
        if rng.random() < 0.5:
            opts.append(rng.choice(["ASC", "DESC"]))
        if rng.random() < 0.4:
            opts += ["COUNT", str(rng.choice([1, 5, 100]))] + (["ANY"] if rng.random() < 0.3 else [])
        lon, lat = repr(13.4 + rng.gauss(0, 0.3)), repr(52.5 + rng.gauss(0, 0.2))
        member = f"m{rng.randrange(200)}"
        pair.same("GEORADIUS", "pts", lon, lat, radius, unit, *opts)
        pair.same("GEORADIUS_RO", "pts", lon, lat, radius, unit, *opts)
        pair.same("GEORADIUSBYMEMBER", "pts", member, radius, unit, *opts)
        pair.same("GEORADIUSBYMEMBER_RO", "pts", member, radius, unit, *opts)
        store = [o for o in opts if not o.startswith("WITH")]
        pair.same("GEORADIUS", "pts", lon, lat, radius, unit, *store, "STORE", "d1")
        pair.same("ZRANGE", "d1", 0, -1, "WITHSCORES")
        pair.same("GEORADIUSBYMEMBER", "pts", member, radius, unit, *store, "STOREDIST", "d2")
        same_zset(pair, "d2")


def test_search_errors_and_edges(pair, clean):
    pair.same("GEOADD", "Sicily", *SICILY)
    pair.same("SET", "str", "x")
    ok = ["FROMLONLAT", "15", "37", "BYRADIUS", "200", "km"]
    pair.same("GEOSEARCH", "Sicily", *ok, "ASC", "WITHDIST", "WITHCOORD", "WITHHASH")
    pair.same("GEOSEARCH", "Sicily", "FROMMEMBER", "Palermo", "BYBOX", "400", "400", "km", "DESC")
    pair.same("GEOSEARCH", "missing", *ok)
    pair.same("GEOSEARCH", "missing", "FROMMEMBER", "x", "BYRADIUS", "1", "m")
    pair.same("GEOSEARCH", "Sicily", "FROMLONLAT", "0", "0", "BYRADIUS", "1", "m")
    pair.same("GEOSEARCHSTORE", "dst", "missing", *ok)
    pair.same("SET", "dst", "old")
    pair.same("GEOSEARCHSTORE", "dst", "missing", *ok)
    pair.same("EXISTS", "dst")
    pair.same("SET", "dst", "old", "EX", "100")
    pair.same("GEOSEARCHSTORE", "dst", "Sicily", *ok)
    pair.same("TTL", "dst")
    pair.same("TYPE", "dst")
    pair.same("GEOSEARCHSTORE", "dst", "Sicily", "FROMLONLAT", "0", "0", "BYRADIUS", "1", "m")
    pair.same("EXISTS", "dst")
    pair.same("GEOSEARCHSTORE", "Sicily", "Sicily", *ok, "STOREDIST")   # the source itself
    same_zset(pair, "Sicily")
    pair.same("GEOADD", "Sicily", *SICILY)
    pair.same("GEORADIUS", "missing", "15", "37", "200", "km", "STORE", "dst2")
    pair.same("GEORADIUSBYMEMBER", "missing", "x", "200", "km")
    pair.same("GEORADIUSBYMEMBER", "missing", "x", "200", "km", "STORE", "dst2")
    errors = [
        ("GEOSEARCH", "Sicily", "BYRADIUS", "200", "km"),
        ("GEOSEARCH", "Sicily", "FROMLONLAT", "15", "37"),
        ("GEOSEARCH", "Sicily", "FROMLONLAT", "15", "37", "FROMMEMBER", "Palermo", "BYRADIUS", "1", "km"),
        ("GEOSEARCH", "Sicily", "FROMMEMBER", "Palermo", "FROMLONLAT", "15", "37", "BYRADIUS", "1", "km"),
        ("GEOSEARCH", "Sicily", *ok, "BYBOX", "1", "1", "km"),
        ("GEOSEARCH", "Sicily", "FROMLONLAT", "15", "37", "BYBOX", "1", "1", "km", "BYRADIUS", "1", "km"),
        ("GEOSEARCH", "Sicily", "FROMMEMBER", "nope", "BYRADIUS", "1", "km"),
        ("GEOSEARCH", "Sicily", "FROMLONLAT", "200", "37", "BYRADIUS", "1", "km"),
        ("GEOSEARCH", "Sicily", "FROMLONLAT", "x", "37", "BYRADIUS", "1", "km"),
        ("GEOSEARCH", "Sicily", "FROMLONLAT", "15", "37", "BYRADIUS", "-1", "km"),
        ("GEOSEARCH", "Sicily", "FROMLONLAT", "15", "37", "BYRADIUS", "x", "km"),
        ("GEOSEARCH", "Sicily", "FROMLONLAT", "15", "37", "BYRADIUS", "1", "parsec"),
        ("GEOSEARCH", "Sicily", "FROMLONLAT", "15", "37", "BYBOX", "x", "1", "km"),
        ("GEOSEARCH", "Sicily", "FROMLONLAT", "15", "37", "BYBOX", "1", "y", "km"),
        ("GEOSEARCH", "Sicily", "FROMLONLAT", "15", "37", "BYBOX", "-1", "1", "km"),
        ("GEOSEARCH", "Sicily", "FROMLONLAT", "15", "37", "BYBOX", "1", "1", "lightyear"),
        ("GEOSEARCH", "Sicily", *ok, "COUNT", "0"),
        ("GEOSEARCH", "Sicily", *ok, "COUNT", "-1"),
        ("GEOSEARCH", "Sicily", *ok, "COUNT", "x"),
        ("GEOSEARCH", "Sicily", *ok, "COUNT"),
        ("GEOSEARCH", "Sicily", *ok, "ANY"),
        ("GEOSEARCH", "Sicily", *ok, "STORE", "x"),
        ("GEOSEARCH", "Sicily", *ok, "STOREDIST"),
        ("GEOSEARCH", "Sicily", *ok, "BOGUS"),
        ("GEOSEARCH", "Sicily", "FROMLONLAT", "15", "BYRADIUS"),
        ("GEOSEARCH", "str", *ok),
        ("GEOSEARCH", "missing", "BYRADIUS", "200", "km", "WITHDIST", "x"),
        ("geosearch", "Sicily", "BYRADIUS", "200", "km", "ASC"),
        ("GEOSEARCHSTORE", "dst", "Sicily", *ok, "WITHDIST"),
        ("GEOSEARCHSTORE", "dst", "Sicily", *ok, "STORE", "x"),
        ("GEOSEARCHSTORE", "dst", "str", *ok),
        ("GEORADIUS", "Sicily", "15", "37", "200", "km", "WITHDIST", "STORE", "x"),
        ("GEORADIUS", "Sicily", "15", "37", "200", "km", "STORE"),
        ("GEORADIUS", "Sicily", "15", "37", "200", "km", "FROMMEMBER", "Palermo"),
        ("GEORADIUS", "Sicily", "15", "37", "200", "parsec"),
        ("GEORADIUS", "Sicily", "15", "370", "200", "km"),
        ("GEORADIUS", "Sicily", "15", "37", "-5", "km"),
        ("GEORADIUS_RO", "Sicily", "15", "37", "200", "km", "STORE", "x"),
        ("GEORADIUS_RO", "Sicily", "15", "37", "200", "km", "STOREDIST", "x"),
        ("GEORADIUSBYMEMBER", "Sicily", "nope", "200", "km"),
        ("GEORADIUSBYMEMBER_RO", "Sicily", "Palermo", "200", "km", "STORE", "x"),
        ("GEORADIUS", "Sicily", "15", "37", "200"),
        ("GEORADIUSBYMEMBER", "Sicily", "Palermo", "200"),
        ("GEOSEARCH", "Sicily", "FROMLONLAT", "15", "37"),
    ]
    for cmd in errors:
        pair.same_error(*cmd)
    pair.same("GEORADIUS", "Sicily", "15", "37", "200", "km", "WITHDIST", "WITHCOORD", "WITHHASH", "ASC", "COUNT", "1")
    pair.same("GEORADIUSBYMEMBER", "Sicily", "Palermo", "200", "km", "WITHDIST", "DESC")
    pair.same("GEORADIUS", "Sicily", "15", "37", "200", "km", "STORE", "d", "STOREDIST", "d2")
    pair.same("EXISTS", "d", "d2")
