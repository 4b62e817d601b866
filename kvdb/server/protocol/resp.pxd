# The RESP wire protocol (Redis serialization protocol, versions 2 and 3): an
# incremental request parser and a reply encoder. The grammar, the limits and the
# error words are documented in docs/format/resp.md.
#
# Requests a client sends are either multibulk frames
#     *<argc>\r\n ( $<len>\r\n <len bytes> \r\n ){argc}
# or inline commands: one line of space-separated words, with "..." and '...'
# quoting as Redis's sdssplitargs has it.


cdef class RequestParser:
    # Bytes received and not yet consumed: buf[pos:] is unparsed.
    cdef bytearray buf           # receive buffer; compacted when pos passes half of it
    cdef Py_ssize_t pos          # offset of the first unparsed byte in buf
    # A multibulk frame in progress, kept across feed() calls so a frame that
    # arrives in many reads is parsed once (never rescanned from its start).
    cdef list args               # arguments parsed so far, or None between frames
    cdef Py_ssize_t argc_left    # arguments still to come in the frame in progress
    cdef Py_ssize_t bulk_len     # length of the bulk being waited for, -1 if none
    # Limits (set by the server from its configuration; changeable between reads).
    cdef public Py_ssize_t max_bulk_len      # proto-max-bulk-len
    cdef public Py_ssize_t max_multibulk_len # largest argc accepted
    cdef public Py_ssize_t max_inline_len    # longest inline line accepted
    # After a protocol error: the error text (an -ERR reply) and no more parsing.
    cdef readonly object error

    cpdef list feed(self, bytes data)
    cdef object parse_one(self)
    cdef object parse_inline(self)
    cdef Py_ssize_t find_crlf(self, Py_ssize_t start)
    cdef int read_count(self, Py_ssize_t line_end, long long *out) except -2
