"""Geo math as Redis does it, so that GEO scores, coordinates, distances and search
results are Redis's to the last bit.

* A position is stored as a sorted-set score: the 52-bit interleaved geohash of
  (longitude in [-180, 180], latitude in [-85.05112878, 85.05112878]), 26 bits each,
  latitude bits in the even positions and longitude bits in the odd ones.
* Decoding a score gives the centre of its cell (clamped to the valid ranges), so a
  GEOPOS reply is a few micro-degrees from what GEOADD was given, as in Redis.
* Distances use the haversine formula with Redis's earth radius (6372797.560856 m),
  in the same order of floating-point operations (same libm), so distances match.
* A radius or box search covers the shape with the geohash cell of the centre at a
  precision chosen from the radius plus its eight neighbours (some dropped when
  they lie outside the shape's bounding box), each cell being one score range
  [min, max) of the sorted set; candidates are then filtered by the exact shape.
  search_ranges() returns those ranges in Redis's order (centre, N, S, E, W, NE, NW,
  SE, SW), which fixes the reply order of an unsorted search.
"""
import math
from decimal import ROUND_HALF_EVEN, Decimal

STEP_MAX = 26                     # bits per coordinate
LAT_MIN, LAT_MAX = -85.05112878, 85.05112878
LONG_MIN, LONG_MAX = -180.0, 180.0
EARTH_RADIUS = 6372797.560856     # meters (Redis's EARTH_RADIUS_IN_METERS)
MERCATOR_MAX = 20037726.37
D_R = math.pi / 180.0
UNITS = {b"m": 1.0, b"km": 1000.0, b"ft": 0.3048, b"mi": 1609.34}
ALPHABET = "0123456789bcdefghjkmnpqrstuvwxyz"
_U64 = (1 << 64) - 1
_EVEN = 0x5555555555555555        # latitude bits
_ODD = 0xAAAAAAAAAAAAAAAA         # longitude bits


def _spread(v):
    """The 32 bits of v moved to the even bit positions of a 64-bit integer."""
    v &= 0xFFFFFFFF
    v = (v | (v << 16)) & 0x0000FFFF0000FFFF
    v = (v | (v << 8)) & 0x00FF00FF00FF00FF
    v = (v | (v << 4)) & 0x0F0F0F0F0F0F0F0F
    v = (v | (v << 2)) & 0x3333333333333333
    v = (v | (v << 1)) & 0x5555555555555555
    return v


def _squash(v):
    """Inverse of _spread: the even bits of v packed into 32 bits."""
    v &= 0x5555555555555555
    v = (v | (v >> 1)) & 0x3333333333333333
    v = (v | (v >> 2)) & 0x0F0F0F0F0F0F0F0F
    v = (v | (v >> 4)) & 0x00FF00FF00FF00FF
    v = (v | (v >> 8)) & 0x0000FFFF0000FFFF
    v = (v | (v >> 16)) & 0x00000000FFFFFFFF
    return v


def interleave(lat_bits, lon_bits):
    return _spread(lat_bits) | (_spread(lon_bits) << 1)


def deinterleave(bits):
    """(latitude bits, longitude bits) of an interleaved hash."""
    return _squash(bits), _squash(bits >> 1)


def valid(lon, lat):
    return LONG_MIN <= lon <= LONG_MAX and LAT_MIN <= lat <= LAT_MAX


def encode(lon, lat, step=STEP_MAX, lat_min=LAT_MIN, lat_max=LAT_MAX):
    """The 2*step-bit geohash of a valid position (None outside Redis's limits)."""
    if not valid(lon, lat) or not (lat_min <= lat <= lat_max):
        return None
    lat_offset = (lat - lat_min) / (lat_max - lat_min) * float(1 << step)
    lon_offset = (lon - LONG_MIN) / (LONG_MAX - LONG_MIN) * float(1 << step)
    return interleave(int(lat_offset), int(lon_offset))  # C truncates to uint32


def score_of(lon, lat):
    """The sorted-set score GEOADD stores for a position (an integer below 2**54)."""
    return encode(lon, lat)


def _score_bits(score):
    """A score as the uint64 C's (uint64_t) cast makes of it on x86-64 (out-of-range
    values as gcc's conversion sequence leaves them)."""
    if score != score:
        return 0
    if -9223372036854775808.0 <= score < 18446744073709551616.0:
        return int(score) & _U64
    return 0 if score > 0 else 1 << 63


def cell(bits, step, lat_min=LAT_MIN, lat_max=LAT_MAX):
    """(lon_min, lon_max, lat_min, lat_max) of a geohash cell."""
    ilat, ilon = deinterleave(bits)
    scale = float(1 << step)
    lat_scale = lat_max - lat_min
    ilat1, ilon1 = (ilat + 1) & 0xFFFFFFFF, (ilon + 1) & 0xFFFFFFFF  # uint32 arithmetic, as in C
    return (LONG_MIN + (ilon * 1.0 / scale) * 360.0, LONG_MIN + (ilon1 * 1.0 / scale) * 360.0,
            lat_min + (ilat * 1.0 / scale) * lat_scale, lat_min + (ilat1 * 1.0 / scale) * lat_scale)


def decode(score):
    """(longitude, latitude) a score stands for: the centre of its cell, clamped."""
    lon_lo, lon_hi, lat_lo, lat_hi = cell(_score_bits(score), STEP_MAX)
    lon = min(max((lon_lo + lon_hi) / 2, LONG_MIN), LONG_MAX)
    lat = min(max((lat_lo + lat_hi) / 2, LAT_MIN), LAT_MAX)
    return lon, lat


def geohash_string(score):
    """GEOHASH's 11-character standard geohash (latitude range -90..90) of a score."""
    lon, lat = decode(score)
    bits = encode(lon, lat, STEP_MAX, -90.0, 90.0) or 0
    chars = [ALPHABET[(bits >> (52 - (i + 1) * 5)) & 31] for i in range(10)]
    return "".join(chars) + ALPHABET[0]


def lat_distance(lat1, lat2):
    return EARTH_RADIUS * abs(lat2 * D_R - lat1 * D_R)


def distance(lon1, lat1, lon2, lat2):
    """Haversine distance in meters, in Redis's order of operations."""
    lon1r, lon2r = lon1 * D_R, lon2 * D_R
    v = math.sin((lon2r - lon1r) / 2)
    if v == 0.0:
        return lat_distance(lat1, lat2)
    lat1r, lat2r = lat1 * D_R, lat2 * D_R
    u = math.sin((lat2r - lat1r) / 2)
    a = u * u + math.cos(lat1r) * math.cos(lat2r) * v * v
    return 2.0 * EARTH_RADIUS * math.asin(math.sqrt(a))


# -- output formats ----------------------------------------------------------------------

def format_distance(d):
    """GEODIST / WITHDIST: four decimals."""
    return b"%.4f" % d


def format_coordinate(x):
    """GEOPOS / WITHCOORD: a double printed as Redis's long double "%.17Lf", trailing
    zeros removed."""
    text = format(Decimal(x).quantize(Decimal(1).scaleb(-17), rounding=ROUND_HALF_EVEN), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    if text == "-0":
        text = "0"
    return text.encode()


# -- searches ----------------------------------------------------------------------------

class Shape:
    """The area of a GEOSEARCH/GEORADIUS: a circle or an axis-aligned box around a centre."""
    __slots__ = ("lon", "lat", "radius", "width", "height", "conversion")

    def __init__(self, lon, lat, conversion, radius=None, width=None, height=None):
        self.lon = lon                  # centre longitude
        self.lat = lat                  # centre latitude
        self.conversion = conversion    # meters per unit of the distances given (and replied)
        self.radius = radius            # circle: radius in units; None for a box
        self.width = width              # box: width in units (east-west)
        self.height = height            # box: height in units (north-south)

    @property
    def is_box(self):
        return self.radius is None

    def bounding_box(self):
        """(lon_min, lat_min, lon_max, lat_max) around the shape."""
        if self.is_box:
            height = self.conversion * (self.height / 2)
            width = self.conversion * (self.width / 2)
        else:
            height = width = self.conversion * self.radius
        lat_delta = (height / EARTH_RADIUS) / D_R
        long_delta_top = (width / EARTH_RADIUS / math.cos((self.lat + lat_delta) * D_R)) / D_R
        long_delta_bottom = (width / EARTH_RADIUS / math.cos((self.lat - lat_delta) * D_R)) / D_R
        delta = long_delta_bottom if self.lat < 0 else long_delta_top
        return self.lon - delta, self.lat - lat_delta, self.lon + delta, self.lat + lat_delta

    def contains(self, score):
        """(longitude, latitude, distance in meters) of a score inside the shape, else None."""
        lon, lat = decode(score)
        if self.is_box:
            if lat_distance(lat, self.lat) > self.height * self.conversion / 2:
                return None
            if distance(lon, lat, self.lon, lat) > self.width * self.conversion / 2:
                return None
            return lon, lat, distance(self.lon, self.lat, lon, lat)
        d = distance(self.lon, self.lat, lon, lat)
        if d > self.radius * self.conversion:
            return None
        return lon, lat, d


def estimate_step(range_meters, lat):
    if range_meters == 0:
        return STEP_MAX
    step = 1
    while range_meters < MERCATOR_MAX:
        range_meters *= 2
        step += 1
    step -= 2
    if lat > 66 or lat < -66:
        step -= 1
        if lat > 80 or lat < -80:
            step -= 1
    return min(max(step, 1), STEP_MAX)


def _move_x(bits, step, d):
    """The cell east (d > 0) or west (d < 0) of `bits`, wrapping around."""
    x, y = bits & _ODD, bits & _EVEN
    zz = _EVEN >> (64 - step * 2)
    if d > 0:
        x = (x + zz + 1) & _U64
    else:
        x = ((x | zz) - (zz + 1)) & _U64
    x &= _ODD >> (64 - step * 2)
    return x | y


def _move_y(bits, step, d):
    """The cell north (d > 0) or south (d < 0) of `bits`, wrapping around."""
    x, y = bits & _ODD, bits & _EVEN
    zz = _ODD >> (64 - step * 2)
    if d > 0:
        y = (y + zz + 1) & _U64
    else:
        y = ((y | zz) - (zz + 1)) & _U64
    y &= _EVEN >> (64 - step * 2)
    return x | y


def neighbours(bits, step):
    """[north, south, east, west, north-east, north-west, south-east, south-west]."""
    return [_move_y(bits, step, 1), _move_y(bits, step, -1), _move_x(bits, step, 1), _move_x(bits, step, -1),
            _move_y(_move_x(bits, step, 1), step, 1), _move_y(_move_x(bits, step, -1), step, 1),
            _move_y(_move_x(bits, step, 1), step, -1), _move_y(_move_x(bits, step, -1), step, -1)]


def search_ranges(shape):
    """The score ranges [min, max) to scan for a search, in Redis's order, without the
    neighbours Redis drops and without a range equal to the one scanned before it."""
    lon_min, lat_min, lon_max, lat_max = shape.bounding_box()
    if shape.is_box:
        radius = math.sqrt((shape.width / 2) * (shape.width / 2) + (shape.height / 2) * (shape.height / 2))
    else:
        radius = shape.radius
    radius *= shape.conversion
    step = estimate_step(radius, shape.lat)
    center = encode(shape.lon, shape.lat, step)
    near = neighbours(center, step)
    north, south, east, west = (cell(b, step) for b in near[:4])
    if step > 1 and (north[3] < lat_max or south[2] > lat_min or east[1] < lon_max or west[0] > lon_min):
        step -= 1  # the cells are too small to cover the shape: one level coarser
        center = encode(shape.lon, shape.lat, step)
        near = neighbours(center, step)
    area = cell(center, step)
    cells = [center] + near   # None marks a dropped neighbour
    if step >= 2:
        if area[2] < lat_min:
            cells[2] = cells[7] = cells[8] = None        # south, south-east, south-west
        if area[3] > lat_max:
            cells[1] = cells[5] = cells[6] = None        # north, north-east, north-west
        if area[0] < lon_min:
            cells[4] = cells[8] = cells[6] = None        # west, south-west, north-west
        if area[1] > lon_max:
            cells[3] = cells[7] = cells[5] = None        # east, south-east, north-east
    ranges = []
    last = None
    for i, bits in enumerate(cells):
        if bits is None:
            continue
        if last is not None and bits == last:
            continue  # huge radii: neighbouring cells can be the same cell
        shift = 52 - step * 2
        ranges.append((bits << shift, (bits + 1) << shift))
        if i > 0:
            last = bits
    return ranges
