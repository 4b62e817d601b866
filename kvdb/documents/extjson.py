"""Documents as JSON: MongoDB extended JSON for the types JSON lacks.

    bytes     {"$binary": "<standard base64>"}
    datetime  {"$date": <milliseconds since the epoch, UTC>}
    ObjectId  {"$oid": "<24 hex digits>"}
A one-field object with one of these keys (and a value of the right type) is read back as that
type; everything else maps to itself.
"""
import base64
import binascii
import datetime
import json

from .codec import datetime_from_ms, datetime_ms
from .objectid import ObjectId


def from_json_value(v):
    if isinstance(v, dict):
        if len(v) == 1:
            (k, inner), = v.items()
            try:
                if k == "$oid" and isinstance(inner, str):
                    return ObjectId(inner)
                if k == "$binary" and isinstance(inner, str):
                    return base64.b64decode(inner, validate=True)
                if k == "$date" and isinstance(inner, int) and not isinstance(inner, bool):
                    return datetime_from_ms(inner)
            except (ValueError, binascii.Error):
                pass
        return {k: from_json_value(x) for k, x in v.items()}
    if isinstance(v, list):
        return [from_json_value(x) for x in v]
    return v


def to_json_value(v):
    if isinstance(v, dict):
        return {str(k): to_json_value(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [to_json_value(x) for x in v]
    if isinstance(v, bytes):
        return {"$binary": base64.b64encode(v).decode()}
    if isinstance(v, datetime.datetime):
        return {"$date": datetime_ms(v)}
    if isinstance(v, ObjectId):
        return {"$oid": str(v)}
    return v


def loads(text):
    """A value from extended JSON text (ValueError on bad JSON)."""
    return from_json_value(json.loads(text))


def dumps(value, **kw):
    return json.dumps(to_json_value(value), ensure_ascii=False, **kw)
