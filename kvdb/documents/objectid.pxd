# ObjectId, the 12-byte document id, and the generator of new ones (objectid.pyx).

cdef class ObjectId:
    cdef readonly bytes _bytes      # the 12 bytes (layout in objectid.pyx); set once, when made

cdef bytes new_id_bytes()
cdef ObjectId objectid_of(bytes data)
