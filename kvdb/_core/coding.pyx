# Python-visible wrappers of the byte coding in coding.pxd, for tests and tools.

from libc.stdint cimport uint32_t


def crc32c_of(data, uint32_t seed=0):
    """CRC-32C of a bytes-like object (optionally continuing from `seed`)."""
    cdef const unsigned char[::1] view = memoryview(data).cast("B")
    if view.shape[0] == 0:
        return seed
    return crc32c_extend(seed, &view[0], view.shape[0])
