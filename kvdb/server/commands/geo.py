"""Geo commands: GEOADD GEOPOS GEODIST GEOHASH GEOSEARCH GEOSEARCHSTORE and the legacy
GEORADIUS GEORADIUSBYMEMBER (and their _RO forms).

A geo set is a sorted set (kvdb/server/zsetstore.py) whose scores are the 52-bit
interleaved geohashes Redis stores (kvdb/server/geohash.py), so ZRANGE, ZSCORE and
ZREM work on it and its scores equal Redis's. A search scans at most nine score
ranges of the sorted set (the cell around the centre and its neighbours, each an
O(log n + k) range scan) and keeps the members inside the exact shape; GEOPOS,
GEODIST and GEOHASH read one member record each. Argument order, error texts and
reply shapes follow Redis 7.2's georadiusGeneric.
"""
from kvdb.server.protocol.resp import NULL_ARRAY

from .. import geohash as gh
from ..keyspace import check_name
from ..zsetstore import parse_score
from .registry import SYNTAX, CommandError, command, int_arg
from .zsets import check_keys, read_zset, save_zset, store_result, write_zset

NOT_FLOAT = "ERR value is not a valid float"
BAD_UNIT = "ERR unsupported unit provided. please use M, KM, FT, MI"
NO_MEMBER = "ERR could not decode requested zset member"


def _g(**kw):
    return dict(group="geo", **kw)


def _float(raw, message=NOT_FLOAT):
    value = parse_score(raw)
    if value is None:
        raise CommandError(message)
    return value


def _lonlat(lon_raw, lat_raw):
    lon, lat = _float(lon_raw), _float(lat_raw)
    if not gh.valid(lon, lat):
        raise CommandError("ERR invalid longitude,latitude pair %f,%f" % (lon, lat))
    return lon, lat


def _unit(raw):
    conversion = gh.UNITS.get(raw.lower())
    if conversion is None:
        raise CommandError(BAD_UNIT)
    return conversion


def _coordinate(c, x):
    """A coordinate as Redis replies it: the bulk string of a long double printed with
    17 decimals (RESP2), or the double that text stands for (RESP3)."""
    text = gh.format_coordinate(x)
    return float(text) if c.proto >= 3 else text


# -- writes and lookups ----------------------------------------------------------------------

@command("geoadd", -5, "write denyoom", "@geo", (1, 1, 1),
         **_g(summary="Adds one or more members to a geospatial index. The key is created if it doesn't exist.",
              since="3.2.0"))
def geoadd(c, args):
    nx = xx = ch = False
    i = 2
    while i < len(args):
        opt = args[i].lower()
        if opt == b"nx":
            nx = True
        elif opt == b"xx":
            xx = True
        elif opt == b"ch":
            ch = True
        else:
            break
        i += 1
    if (len(args) - i) % 3 or (nx and xx) or i == len(args):
        raise CommandError(SYNTAX)
    items = []
    for j in range(i, len(args), 3):
        lon, lat = _lonlat(args[j], args[j + 1])
        check_name(args[j + 2], "member")
        items.append((float(gh.score_of(lon, lat)), args[j + 2]))
    zs = write_zset(c, args[1], create=not xx)
    if zs is None:
        return 0
    if len(items) > 64 and len(items) >= zs.count:
        zs.bulk()  # many members into a small set: rebuild the rank index once (as ZADD does)
    added = changed = 0
    for score, member in items:
        current = zs.score(member)
        if current is None:
            if xx:
                continue
            zs.add(member, score, old=None)
            added += 1
        elif not nx and current != score:
            zs.add(member, score, old=current)
            changed += 1
    if added or changed:
        save_zset(c, args[1], zs, "zadd")
    return added + changed if ch else added


@command("geopos", -2, "readonly", "@geo", (1, 1, 1),
         **_g(summary="Returns the longitude and latitude of members from a geospatial index.", since="3.2.0"))
def geopos(c, args):
    zs = read_zset(c, args[1])
    out = []
    for member in args[2:]:
        score = zs.score(member) if zs is not None else None
        if score is None:
            out.append(NULL_ARRAY)
            continue
        lon, lat = gh.decode(score)
        out.append([_coordinate(c, lon), _coordinate(c, lat)])
    return out


@command("geodist", -4, "readonly", "@geo", (1, 1, 1),
         **_g(summary="Returns the distance between two members of a geospatial index.", since="3.2.0"))
def geodist(c, args):
    conversion = 1.0
    if len(args) == 5:
        conversion = _unit(args[4])
    elif len(args) > 5:
        raise CommandError(SYNTAX)
    zs = read_zset(c, args[1])
    if zs is None:
        return None
    s1, s2 = zs.score(args[2]), zs.score(args[3])
    if s1 is None or s2 is None:
        return None
    (lon1, lat1), (lon2, lat2) = gh.decode(s1), gh.decode(s2)
    return gh.format_distance(gh.distance(lon1, lat1, lon2, lat2) / conversion)


@command("geohash", -2, "readonly", "@geo", (1, 1, 1),
         **_g(summary="Returns members from a geospatial index as geohash strings.", since="3.2.0"))
def geohash_(c, args):
    zs = read_zset(c, args[1])
    out = []
    for member in args[2:]:
        score = zs.score(member) if zs is not None else None
        out.append(None if score is None else gh.geohash_string(score).encode())
    return out


# -- searches -----------------------------------------------------------------------------------

COORDS, MEMBER, NOSTORE, SEARCH, SEARCHSTORE = 1, 2, 4, 8, 16


def _distance_arg(radius_raw, unit_raw):
    radius = _float(radius_raw, "ERR need numeric radius")
    if radius < 0:
        raise CommandError("ERR radius cannot be negative")
    return radius, _unit(unit_raw)


def _member_position(zs, member):
    score = zs.score(member)
    if score is None:
        raise CommandError(NO_MEMBER)
    return gh.decode(score)


def _search(c, args, src_index, flags):
    """georadiusGeneric: parse, search, reply or store."""
    zs = read_zset(c, args[src_index])
    center = None           # (lon, lat)
    radius = width = height = None
    conversion = 1.0
    store = None
    storedist = False
    if flags & COORDS:
        base = 6
        center = _lonlat(args[2], args[3])
        radius, conversion = _distance_arg(args[4], args[5])
    elif flags & MEMBER:
        base = 5
        if zs is not None:
            center = _member_position(zs, args[2])
            radius, conversion = _distance_arg(args[3], args[4])
    else:
        base = 2
        if flags & SEARCHSTORE:
            base = 3
            store = args[1]
    withdist = withhash = withcoord = any_ = False
    frommember = fromloc = byradius = bybox = False
    sort = None
    count = 0
    n = len(args)
    i = base
    while i < n:
        arg = args[i].lower()
        left = n - i - 1
        if arg == b"withdist":
            withdist = True
        elif arg == b"withhash":
            withhash = True
        elif arg == b"withcoord":
            withcoord = True
        elif arg == b"any":
            any_ = True
        elif arg == b"asc":
            sort = "asc"
        elif arg == b"desc":
            sort = "desc"
        elif arg == b"count" and left >= 1:
            count = int_arg(args[i + 1])
            if count <= 0:
                raise CommandError("ERR COUNT must be > 0")
            i += 1
        elif arg in (b"store", b"storedist") and left >= 1 and not flags & (NOSTORE | SEARCH):
            store = args[i + 1]
            storedist = arg == b"storedist"
            i += 1
        elif arg == b"storedist" and flags & SEARCHSTORE:
            storedist = True
        elif arg == b"frommember" and left >= 1 and flags & SEARCH and not fromloc:
            if zs is not None:
                center = _member_position(zs, args[i + 1])
            frommember = True
            i += 1
        elif arg == b"fromlonlat" and left >= 2 and flags & SEARCH and not frommember:
            center = _lonlat(args[i + 1], args[i + 2])
            fromloc = True
            i += 2
        elif arg == b"byradius" and left >= 2 and flags & SEARCH and not bybox:
            radius, conversion = _distance_arg(args[i + 1], args[i + 2])
            byradius = True
            i += 2
        elif arg == b"bybox" and left >= 3 and flags & SEARCH and not byradius:
            width = _float(args[i + 1], "ERR need numeric width")
            height = _float(args[i + 2], "ERR need numeric height")
            if width < 0 or height < 0:
                raise CommandError("ERR height or width cannot be negative")
            conversion = _unit(args[i + 3])
            bybox = True
            i += 3
        else:
            raise CommandError(SYNTAX)
        i += 1
    name = args[0].decode("utf-8", "replace")
    if store is not None and (withdist or withhash or withcoord):
        what = "GEOSEARCHSTORE" if flags & SEARCHSTORE else "STORE option in GEORADIUS"
        raise CommandError(f"ERR {what} is not compatible with WITHDIST, WITHHASH and WITHCOORD options")
    if flags & SEARCH and not (frommember or fromloc):
        raise CommandError(f"ERR exactly one of FROMMEMBER or FROMLONLAT can be specified for {name}")
    if flags & SEARCH and not (byradius or bybox):
        raise CommandError(f"ERR exactly one of BYRADIUS and BYBOX can be specified for {name}")
    if any_ and not count:
        raise CommandError("ERR the ANY argument requires COUNT argument")
    if store is not None:
        check_keys(c, [store])
    if zs is None:
        if store is not None:
            c.server.ks.delete(c.db, store)
            return 0
        return []
    if count and sort is None and not any_:
        sort = "asc"
    shape = gh.Shape(center[0], center[1], conversion, radius=radius) if radius is not None else \
        gh.Shape(center[0], center[1], conversion, width=width, height=height)
    found = _members_in(zs, shape, count if any_ else 0)
    if sort is not None:
        found.sort(key=lambda hit: hit[3], reverse=sort == "desc")  # stable, as glibc's qsort
    if count:
        found = found[:count]
    if store is not None:
        pairs = [(member, dist / conversion if storedist else score) for member, score, _, dist in found]
        return store_result(c, store, pairs, "geosearchstore" if flags & SEARCH else "georadiusstore")
    if not (withdist or withhash or withcoord):
        return [member for member, _, _, _ in found]
    out = []
    for member, score, (lon, lat), dist in found:
        item = [member]
        if withdist:
            item.append(gh.format_distance(dist / conversion))
        if withhash:
            item.append(int(score))
        if withcoord:
            item.append([_coordinate(c, lon), _coordinate(c, lat)])
        out.append(item)
    return out


def _members_in(zs, shape, limit):
    """[(member, score, (lon, lat), distance in meters)] of the members inside the shape,
    cell by cell in Redis's order; at most `limit` when limit > 0 (ANY)."""
    found = []
    for lo, hi in gh.search_ranges(shape):
        if limit and len(found) >= limit:
            break
        start, end = zs.score_range(float(lo), False, float(hi), True)
        if start is None:
            continue
        for member, score in zs.by_keys(start, end):
            hit = shape.contains(score)
            if hit is not None:
                found.append((member, score, (hit[0], hit[1]), hit[2]))
            if limit and len(found) >= limit:
                break
    return found


@command("geosearch", -7, "readonly", "@geo", (1, 1, 1),
         **_g(summary="Queries a geospatial index for members inside an area of a box or a circle.", since="6.2.0"))
def geosearch(c, args):
    return _search(c, args, 1, SEARCH)


@command("geosearchstore", -8, "write denyoom", "@geo", (1, 2, 1),
         **_g(summary="Queries a geospatial index for members inside an area of a box or a circle, optionally "
                      "stores the result.", since="6.2.0"))
def geosearchstore(c, args):
    return _search(c, args, 2, SEARCH | SEARCHSTORE)


@command("georadius", -6, "write denyoom", "@geo", (1, 1, 1),
         **_g(summary="Queries a geospatial index for members within a distance from a coordinate, optionally "
                      "stores the result.", since="3.2.0"))
def georadius(c, args):
    return _search(c, args, 1, COORDS)


@command("georadius_ro", -6, "readonly", "@geo", (1, 1, 1),
         **_g(summary="Returns members from a geospatial index that are within a distance from a coordinate.",
              since="3.2.10"))
def georadius_ro(c, args):
    return _search(c, args, 1, COORDS | NOSTORE)


@command("georadiusbymember", -5, "write denyoom", "@geo", (1, 1, 1),
         **_g(summary="Queries a geospatial index for members within a distance from a member, optionally stores "
                      "the result.", since="3.2.0"))
def georadiusbymember(c, args):
    return _search(c, args, 1, MEMBER)


@command("georadiusbymember_ro", -5, "readonly", "@geo", (1, 1, 1),
         **_g(summary="Returns members from a geospatial index that are within a distance from a member.",
              since="3.2.10"))
def georadiusbymember_ro(c, args):
    return _search(c, args, 1, MEMBER | NOSTORE)
