# The shared-memory file of a B+Tree database (shared.pxd; format: docs/format/shm.md).

import errno as _errno
import os

from libc.errno cimport errno, EINTR, EBUSY
from libc.stdint cimport uint32_t, uint64_t
from libc.string cimport memcpy, memset
from posix.mman cimport mmap, munmap, PROT_READ, PROT_WRITE, MAP_SHARED, MAP_FAILED
from posix.unistd cimport close as c_close, ftruncate

from kvdb._core.file cimport byte_lock, byte_holder, BYTE_FREE, BYTE_EXCLUSIVE
from kvdb.errors import ClosedError, CorruptionError, LockedError

cdef extern from "<pthread.h>" nogil:
    ctypedef struct pthread_mutexattr_t:
        pass
    int pthread_mutexattr_init(pthread_mutexattr_t *attr)
    int pthread_mutexattr_destroy(pthread_mutexattr_t *attr)
    int pthread_mutexattr_setpshared(pthread_mutexattr_t *attr, int pshared)
    int pthread_mutexattr_setrobust(pthread_mutexattr_t *attr, int robust)
    int pthread_mutex_init(pthread_mutex_t *m, const pthread_mutexattr_t *attr)
    int pthread_mutex_lock(pthread_mutex_t *m)
    int pthread_mutex_trylock(pthread_mutex_t *m)
    int pthread_mutex_unlock(pthread_mutex_t *m)
    int pthread_mutex_consistent(pthread_mutex_t *m)
    int PTHREAD_PROCESS_SHARED
    int PTHREAD_MUTEX_ROBUST

cdef extern from "<sched.h>" nogil:
    int sched_yield()

cdef extern from *:
    """
    static inline void kvdb_cpu_relax(void) {   /* a spin-wait hint to the CPU */
    #if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
    #elif defined(__aarch64__)
        __asm__ __volatile__("yield");
    #endif
    }
    """
    void cpu_relax "kvdb_cpu_relax" () nogil

cdef enum:
    COMMIT_MUTEX_PAUSE_ROUNDS = 8    # rounds of 16 pause hints and a retry before lock() yields
    COMMIT_MUTEX_SPINS = 64          # yields and retries before a contended lock() sleeps (see lock())
    SPIN_OPENS_PER_CPU = 4           # lock() spins while the live opens are at most this many per CPU

cdef extern from "<errno.h>":
    int EOWNERDEAD

cdef extern from "shm_atomic.h" nogil:
    uint64_t shm_load(const uint64_t *p)
    void shm_store(uint64_t *p, uint64_t v)
    void shm_max(uint64_t *p, uint64_t v)

SHM_MAGIC = b"kvdb-shm"
SHM_FILE_SUFFIX = "-shm"
SLOT_CAPACITY = SHM_SLOTS        # opens of one database at once (docs/format/shm.md)

# The header and every slot lie inside the one page that is mapped, below the slot lock bytes:
# a slot past it would be read from whatever the process maps next (a crash, or a neighbour's
# data taken for a live open).
if sizeof(ShmHeader) > SHM_HEADER_SIZE or sizeof(ShmSlot) != SHM_SLOT_SIZE or \
        SHM_HEADER_SIZE + SHM_SLOTS * SHM_SLOT_SIZE > SHM_SLOT_LOCK_BASE:
    raise ImportError("kvdb/_core/btree/shared.pxd: the shared-memory header and slots do not fit their page")


cdef class SharedMemory:
    """The mapping of data.kvdb-shm. `create` (the first opener, holding the LOCK file's byte 0
    exclusive): write a fresh header and commit mutex. Otherwise check the header another open
    wrote. OSError if the file cannot be opened for writing (the caller decides)."""

    def __cinit__(self):
        self.fd = -1
        self.hdr = NULL
        self.slot = -1

    def __init__(self, str path, bint create):
        cdef pthread_mutexattr_t attr
        self.path = path
        self.cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        self.size = SHM_SLOT_LOCK_BASE          # header + slots fit below the slot lock bytes
        flags = os.O_RDWR | getattr(os, "O_CLOEXEC", 0) | (os.O_CREAT if create else 0)
        self.fd = os.open(path, flags, 0o644)
        if create:
            if ftruncate(self.fd, 0) != 0 or ftruncate(self.fd, self.size) != 0:
                raise OSError(errno, os.strerror(errno), path)
        elif os.fstat(self.fd).st_size < self.size:
            raise CorruptionError(f"{path}: shared-memory file is {os.fstat(self.fd).st_size} bytes, "
                                  f"expected {self.size} (written by another kvdb version?)", path=path)
        cdef void *m = mmap(NULL, self.size, PROT_READ | PROT_WRITE, MAP_SHARED, self.fd, 0)
        if m == MAP_FAILED:
            raise OSError(errno, os.strerror(errno), path)
        self.hdr = <ShmHeader *>m
        self.slots = <ShmSlot *>(<char *>m + SHM_HEADER_SIZE)
        if create:
            memset(m, 0, self.size)
            pthread_mutexattr_init(&attr)
            pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED)
            pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST)
            r = pthread_mutex_init(&self.hdr.mutex, &attr)
            pthread_mutexattr_destroy(&attr)
            if r != 0:
                raise OSError(r, os.strerror(r), path)
            self.hdr.version = SHM_VERSION
            self.hdr.slots = SHM_SLOTS
            memcpy(self.hdr.magic, <const char *>SHM_MAGIC, 8)   # last: the header is whole
        else:
            magic = (<char *>self.hdr.magic)[:8]
            if magic != SHM_MAGIC or self.hdr.version != SHM_VERSION or self.hdr.slots != SHM_SLOTS:
                raise CorruptionError(f"{path}: not a kvdb shared-memory file of version {SHM_VERSION} "
                                      f"(magic {magic!r}, version {self.hdr.version})", path=path)

    # -- the commit mutex (O3) -------------------------------------------------

    cdef int lock(self) except -1:
        cdef int r
        if self.hdr == NULL:
            raise ClosedError(f"{self.path} is closed")
        cdef int tries, opens = 0, i
        r = pthread_mutex_trylock(&self.hdr.mutex)
        if r == EBUSY:
            for i in range(SHM_SLOTS):
                opens += shm_load(&self.slots[i].used) != 0
            with nogil:
                # A commit holds the mutex for microseconds (the log's read and write: it applies
                # its tree after); sleeping on it and being woken costs tens (an idle virtual CPU
                # halts, and the woken open may wait behind the waker's CPU). So yield and retry a
                # while first: the holder is running, or runnable and then given the CPU the
                # yield frees. Measured with 2 CPUs, this beats sleeping at once up to 4 opens per
                # CPU (4 opens: 126k against 102k Cache sets/s; 6: 80k against 71k; 8: the same),
                # and the pause rounds before the yields add more (4 opens: 156k against 126k
                # sets/s, 225k against 191k incrs/s; 32 or 128 rounds were slower than 8).
                # With more opens, waiters sleep at once, so the holder is not kept from a CPU.
                if opens <= SPIN_OPENS_PER_CPU * self.cpus:
                    # First a few microseconds of pause loops: a holder on another CPU is often
                    # about to release it (no system call for either side); then the yields.
                    for tries in range(COMMIT_MUTEX_PAUSE_ROUNDS):
                        for i in range(16):
                            cpu_relax()
                        r = pthread_mutex_trylock(&self.hdr.mutex)
                        if r != EBUSY:
                            break
                    for tries in range(COMMIT_MUTEX_SPINS if r == EBUSY else 0):
                        sched_yield()
                        r = pthread_mutex_trylock(&self.hdr.mutex)
                        if r != EBUSY:
                            break
                if r == EBUSY:
                    r = pthread_mutex_lock(&self.hdr.mutex)
        self.owner_died = r == EOWNERDEAD
        if r == EOWNERDEAD:
            pthread_mutex_consistent(&self.hdr.mutex)
            if shm_load(&self.hdr.pub) & 1:
                shm_store(&self.hdr.pub, shm_load(&self.hdr.pub) + 1)   # its publication never finished
        elif r != 0:
            raise OSError(r, f"taking the commit mutex of {self.path}: {os.strerror(r)}")
        return 0

    cdef int unlock(self) except -1:
        pthread_mutex_unlock(&self.hdr.mutex)
        return 0

    # -- publication (O1) ------------------------------------------------------

    cdef uint64_t commit_seq(self) noexcept nogil:
        return shm_load(&self.hdr.commit_seq) if self.hdr != NULL else 0

    cdef uint64_t pub_now(self) noexcept nogil:
        return shm_load(&self.hdr.pub) if self.hdr != NULL else 0

    cdef tuple published(self):
        cdef uint64_t g1, g2, seq, end, salt, base, gen
        while True:
            g1 = shm_load(&self.hdr.pub)
            if g1 & 1:
                continue                # a publication is a few stores long
            seq = shm_load(&self.hdr.commit_seq)
            end = shm_load(&self.hdr.log_end)
            salt = shm_load(&self.hdr.log_salt)
            base = shm_load(&self.hdr.log_base)
            gen = shm_load(&self.hdr.ckpt_gen)
            g2 = shm_load(&self.hdr.pub)
            if g1 == g2:
                return seq, end, salt, base, gen, g1

    cdef uint64_t publish(self, uint64_t commit_seq, uint64_t log_end, uint64_t log_salt, uint64_t log_base,
                          uint64_t ckpt_gen) except 0:
        shm_store(&self.hdr.pub, shm_load(&self.hdr.pub) + 1)
        shm_store(&self.hdr.log_end, log_end)
        shm_store(&self.hdr.log_salt, log_salt)
        shm_store(&self.hdr.log_base, log_base)
        shm_store(&self.hdr.ckpt_gen, ckpt_gen)
        shm_store(&self.hdr.commit_seq, commit_seq)
        shm_store(&self.hdr.pub, shm_load(&self.hdr.pub) + 1)
        return shm_load(&self.hdr.pub)

    @property
    def recovered(self):
        return shm_load(&self.hdr.recovered) != 0

    def set_recovered(self):
        shm_store(&self.hdr.recovered, 1)

    @property
    def synced_seq(self):
        return shm_load(&self.hdr.synced_seq) if self.hdr != NULL else 0

    def note_synced(self, uint64_t seq):
        if self.hdr != NULL:
            shm_max(&self.hdr.synced_seq, seq)

    @property
    def commit_seq_now(self):
        return shm_load(&self.hdr.commit_seq)

    # -- the checkpoint lock (O4) ----------------------------------------------

    cdef int lock_checkpoints(self) except -1:
        byte_lock(self.fd, BYTE_EXCLUSIVE, SHM_CHECKPOINT_LOCK, True)
        return 0

    cdef bint try_lock_checkpoints(self) except -1:
        return byte_lock(self.fd, BYTE_EXCLUSIVE, SHM_CHECKPOINT_LOCK, False) == 0

    cdef int unlock_checkpoints(self) except -1:
        if self.fd >= 0:
            byte_lock(self.fd, BYTE_FREE, SHM_CHECKPOINT_LOCK, False)
        return 0

    # -- slots (O2) -----------------------------------------------------------

    def claim_slot(self, uint64_t base_gen):
        """Take a free slot (its lock byte free: never claimed, or its holder closed or died) and
        register base_gen in it; LockedError when every slot is taken."""
        cdef int i
        for i in range(SHM_SLOTS):
            if byte_lock(self.fd, BYTE_EXCLUSIVE, SHM_SLOT_LOCK_BASE + i, False) == 0:
                self.slots[i].used = 0
                shm_store(&self.slots[i].base_gen, base_gen)
                shm_store(&self.slots[i].seq, 0)
                self.slots[i].pid = os.getpid()
                shm_store(&self.slots[i].used, 1)
                self.slot = i
                return i
        raise LockedError(f"{self.path}: {SHM_SLOTS} opens of this database are live; close one first",
                          path=self.path)

    cdef int set_base(self, uint64_t gen, uint64_t seq) except -1:
        if self.slot >= 0:
            shm_store(&self.slots[self.slot].base_gen, gen)
            shm_store(&self.slots[self.slot].seq, seq)
        return 0

    cdef uint64_t min_base(self, uint64_t limit) except? 0:
        """The smallest base_gen among live slots, capped at `limit` (this open's own, say). A slot
        marked used whose lock byte is free belongs to an open that died: it does not count."""
        cdef uint64_t best = limit, b
        cdef int i
        for i in range(SHM_SLOTS):
            if i == self.slot or not shm_load(&self.slots[i].used):
                continue
            b = shm_load(&self.slots[i].base_gen)
            if b < best and byte_holder(self.fd, SHM_SLOT_LOCK_BASE + i) != BYTE_FREE:
                best = b
        return best

    def live_opens(self):
        """[(pid, base_gen, seq)] of the live slots, this one included."""
        out = []
        for i in range(SHM_SLOTS):
            if shm_load(&self.slots[i].used) and (i == self.slot or
                                                   byte_holder(self.fd, SHM_SLOT_LOCK_BASE + i) != BYTE_FREE):
                out.append((self.slots[i].pid, shm_load(&self.slots[i].base_gen), shm_load(&self.slots[i].seq)))
        return out

    def forget(self):
        """After fork(), in the child: drop the inherited mapping and descriptor without touching
        the slot, which stays the parent's (its lock goes with the parent's descriptor)."""
        self.slot = -1
        if self.hdr != NULL:
            munmap(self.hdr, self.size)
            self.hdr = NULL
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            os.close(fd)

    def close(self):
        if self.slot >= 0 and self.hdr != NULL:
            shm_store(&self.slots[self.slot].used, 0)
        self.forget()                   # closing the descriptor drops the slot's lock

    def __dealloc__(self):
        if self.hdr != NULL:
            munmap(self.hdr, self.size)
        if self.fd >= 0:
            c_close(self.fd)
