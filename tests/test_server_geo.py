"""Geo: kvdb/server/geohash.py against a reference redis-server (scores, GEOPOS text,
GEOHASH strings, GEODIST, and the candidate cells and order of GEOSEARCH), then the
GEO commands of kvdb serve against redis-server in RESP2 and RESP3."""
import bisect
import random

import pytest

from kvdb.server import geohash as g
from redisref import redis_reference

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


def test_search_cells_and_order_match_redis(ref):
    """The same members in the same order as redis-server's GEOSEARCH, unsorted too (the
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
