# The LZ4 block format (no frame, no stored size), written here so that SSTable
# blocks can be compressed and decompressed without the GIL. Compatible with
# every LZ4 block encoder and decoder (lz4.block with store_size=False).
#
# A block is a run of sequences; each sequence:
#   token u8             high 4 bits: literal length, low 4 bits: match length - LZ4_MIN_MATCH
#   [255* u8]            a nibble of 15 continues the length in bytes, ending below 255
#   literals             literal-length bytes
#   offset u16 LE        distance back to the match (1..65535); absent in the last sequence
#   [255* u8]            continuation of the match length
# The last LZ4_LAST_LITERALS bytes are literals and the last match starts at
# least LZ4_MATCH_FIND_LIMIT bytes before the end (the format's end rules).

cdef enum:
    LZ4_MIN_MATCH = 4
    LZ4_LAST_LITERALS = 5
    LZ4_MATCH_FIND_LIMIT = 12
    LZ4_MAX_OFFSET = 65535
    LZ4_HASH_LOG = 13                    # 8192 slots of the encoder's match table
    LZ4_SMALL_INPUT = 65536              # inputs up to this size use 16-bit positions

cdef Py_ssize_t lz4_bound(Py_ssize_t n) noexcept nogil

# Compress src[0:n] into dst (cap bytes). Returns the compressed size, or 0
# when it does not fit in cap (the caller then stores the block raw).
cdef Py_ssize_t lz4_compress(const unsigned char *src, Py_ssize_t n,
                             unsigned char *dst, Py_ssize_t cap) noexcept nogil

# Decompress src[0:n] into dst (cap bytes). Returns the decompressed size, or
# -1 when the input is malformed or would overflow dst (never reads or writes
# outside the two buffers).
cdef Py_ssize_t lz4_decompress(const unsigned char *src, Py_ssize_t n,
                               unsigned char *dst, Py_ssize_t cap) noexcept nogil
