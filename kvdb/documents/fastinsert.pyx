# cython: language_level=3, boundscheck=False, wraparound=False
"""insert_many's common case in C: documents without an _id, into a collection whose indexes are
all plain single-field ones (not unique, not compound).

For each such document, encode_new() checks its field names (codec.check_document's rule), draws
an ObjectId, packs the document with the _id first (codec.pack_with_new_id's bytes), builds its
index keys (index prefix, keycodec.encode of the field's value, encoded _id: indexes.put_entries'
keys) and hands the document record and index entries to the writer. It stops at the first
document it cannot take whole, writing nothing for that one, and the caller's general path
(Collection._prepare, _insert_prepared) takes it: a document that is not a dict or has an _id, a
bad field name, a value documents cannot hold, an array under an indexed field (multikey), an
oversize document or index key. The general path then raises the same error it always has.

The Python code stays the reference: tests/documents/test_doc_fastinsert.py stores the same
documents both ways and compares every key and value.
"""
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.dict cimport PyDict_Next
from cpython.ref cimport PyObject
from libc.string cimport memcpy

from .keycodec import encode
from .objectid cimport new_id_bytes, objectid_of


cdef extern from "Python.h":
    Py_ssize_t PyUnicode_GET_LENGTH(object o)
    Py_UCS4 PyUnicode_READ_CHAR(object o, Py_ssize_t index)
    Py_ssize_t PyUnicode_FindChar(object o, Py_UCS4 ch, Py_ssize_t start, Py_ssize_t end, int direction) except -2


cdef const unsigned char *ID_FIELD = b"\xa3_id\xc7\x0c\x01"   # fixstr "_id", ext8 of 12 bytes, type 1
cdef enum:
    ID_FIELD_SIZE = 7
    OID_SIZE = 12
    ID_KEY_TAG = 0x48                 # keycodec's tag of an ObjectId key


cdef bint name_ok(object name) except -1:
    """A field name documents accept: a str, not starting with '$', without '.'."""
    if type(name) is not str:
        return False
    cdef Py_ssize_t n = PyUnicode_GET_LENGTH(name)
    if n and PyUnicode_READ_CHAR(name, 0) == u'$':
        return False
    return PyUnicode_FindChar(name, u'.', 0, n, 1) < 0


cdef bint names_ok(dict doc) except -1:
    """codec._names_ok: every field name in doc, its sub-documents and arrays, is acceptable."""
    cdef Py_ssize_t pos = 0
    cdef PyObject *k
    cdef PyObject *v
    while PyDict_Next(doc, &pos, &k, &v):
        if not name_ok(<object>k):
            return False
        if type(<object>v) is dict:
            if not names_ok(<dict>v):
                return False
        elif type(<object>v) is list:
            if not items_ok(<list>v):
                return False
    return True


cdef bint items_ok(list items) except -1:
    for value in items:
        if type(value) is dict:
            if not names_ok(<dict>value):
                return False
        elif type(value) is list:
            if not items_ok(<list>value):
                return False
    return True


def check_names(doc):
    """names_ok for Python callers and tests (a non-dict is not a document: False)."""
    return type(doc) is dict and names_ok(<dict>doc)


cdef bytes with_id(bytes packed, bytes oid):
    """The msgpack map `packed` with the field _id: oid put first (codec.pack_with_new_id)."""
    cdef const unsigned char *d = <const unsigned char *>PyBytes_AS_STRING(packed)
    cdef Py_ssize_t size = PyBytes_GET_SIZE(packed), head
    cdef unsigned long n
    cdef unsigned char first = d[0]
    if 0x80 <= first <= 0x8f:
        n, head = first & 0x0F, 1
    elif first == 0xde:
        n, head = (<unsigned long>d[1] << 8) | d[2], 3
    elif first == 0xdf:
        n = (<unsigned long>d[1] << 24) | (<unsigned long>d[2] << 16) | (<unsigned long>d[3] << 8) | d[4]
        head = 5
    else:
        raise ValueError("a packed document must be a msgpack map")
    n += 1
    cdef Py_ssize_t new_head = 1 if n < 16 else (3 if n < 65536 else 5)
    cdef bytes out = PyBytes_FromStringAndSize(NULL, new_head + ID_FIELD_SIZE + OID_SIZE + size - head)
    cdef unsigned char *o = <unsigned char *>PyBytes_AS_STRING(out)
    if n < 16:
        o[0] = 0x80 | n
    elif n < 65536:
        o[0], o[1], o[2] = 0xde, n >> 8, n & 0xFF
    else:
        o[0], o[1], o[2], o[3], o[4] = 0xdf, n >> 24, (n >> 16) & 0xFF, (n >> 8) & 0xFF, n & 0xFF
    memcpy(o + new_head, ID_FIELD, ID_FIELD_SIZE)
    memcpy(o + new_head + ID_FIELD_SIZE, PyBytes_AS_STRING(oid), OID_SIZE)
    memcpy(o + new_head + ID_FIELD_SIZE + OID_SIZE, d + head, size - head)
    return out


cdef bytes id_key(bytes oid):
    """keycodec.encode of an ObjectId: its tag, then its 12 bytes."""
    cdef bytes out = PyBytes_FromStringAndSize(NULL, 1 + OID_SIZE)
    cdef unsigned char *o = <unsigned char *>PyBytes_AS_STRING(out)
    o[0] = ID_KEY_TAG
    memcpy(o + 1, PyBytes_AS_STRING(oid), OID_SIZE)
    return out


def encode_new(list batch, Py_ssize_t start, list fields, bytes doc_prefix, object pack, object put,
               list ids, Py_ssize_t max_key):
    """Insert batch[start:] while each document takes the fast path; returns the index of the
    first one that does not (len(batch) when all did). `fields`: [(index prefix, field name)] of
    the collection's indexes; `pack`: codec.pack; `put(key, value)`: the operation's writer;
    `ids`: the new ObjectIds are appended to it; `max_key`: the largest key the database takes.
    Each document taken gets its "_id" field set, as pymongo does."""
    cdef Py_ssize_t i, n = len(batch), nfields = len(fields), j
    cdef list keys = [None] * nfields
    cdef bytes oid, eid, packed, key, doc_key
    cdef tuple spec
    for i in range(start, n):
        doc = batch[i]
        if type(doc) is not dict or "_id" in <dict>doc or not names_ok(<dict>doc):
            return i
        try:
            packed = pack(doc)
        except Exception:
            return i                       # the general path raises the error, naming the field
                                           # (pack also refuses an oversize document)
        oid = new_id_bytes()
        eid = id_key(oid)
        for j in range(nfields):
            spec = <tuple>fields[j]
            value = (<dict>doc).get(spec[1])
            if type(value) is list:
                return i                   # multikey: the general path marks the index
            key = <bytes>spec[0] + <bytes>encode(value) + eid
            if PyBytes_GET_SIZE(key) > max_key:
                return i
            keys[j] = key
        doc_key = doc_prefix + eid
        if PyBytes_GET_SIZE(doc_key) > max_key:
            return i
        packed = with_id(packed, oid)
        oid_object = objectid_of(oid)
        (<dict>doc)["_id"] = oid_object
        put(doc_key, packed)
        for j in range(nfields):
            put(keys[j], eid)
        ids.append(oid_object)
    return n
