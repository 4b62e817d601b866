"""kvdb.aio: kvdb for asyncio, following aiosqlite's model (docs/aio.md).

Each open database has one worker thread, and every engine call of that database runs on it, in
the order the calls were made; the event loop only queues calls and is woken with their results.
The engine releases the GIL in its I/O, so the loop keeps running while a call reads or writes.

    import kvdb.aio
    async with kvdb.aio.open("data/") as db:          # or: db = await kvdb.aio.open("data/")
        await db.put(b"k", b"v")
        async for k, v in db.scan(prefix=b"k"):       # batches of items per trip to the thread
            ...
        async with db.transaction() as tx:            # commits at the end, rolls back on error
            await tx.put(b"n", await tx.get(b"k"))
        people = db.collection("people")              # documents, Motor-style
        await people.insert_one({"name": "ada"})
        docs = await people.find({}).sort("name").to_list()

Cancelling a task that awaits a call: a call the thread has not started yet is skipped; one it
has started runs to its end (a put that started is committed), and its result is dropped. Commit,
rollback and close always run to their end once asked for. An exception raised by the engine
reaches the awaiting task unchanged. After close(), every call raises kvdb.ClosedError.

To wrap a new method of the core, add a method in the same shape as the others, to _Handle if
every handle has it, else to Database:
`async def pop(self, key, *default): return await self._call(self._handle.pop, key, *default)`.
"""
import asyncio
import collections
import itertools
import queue
import threading
from typing import Any, Callable, Generator, List, Optional, TypeVar

import kvdb
from kvdb import documents
from kvdb.errors import ClosedError

__all__ = ["open", "Database", "Namespace", "Transaction", "Snapshot", "ScanIterator", "KeyCursor", "Collection",
           "Cursor"]

_B = TypeVar("_B", bound="_Batches")
_V = TypeVar("_V", bound="_View")

FIRST_BATCH = 32            # items the first trip of a scan or cursor fetches: a loop that stops early reads little
SCAN_BATCH = 1024           # default most items one trip fetches (each later trip doubles, up to this)


# -- the worker thread ------------------------------------------------------------------------------

class _Worker:
    """One thread that runs calls one at a time, in the order they were queued."""

    def __init__(self, name):
        # (asyncio future or None, function, args, keywords), or None to stop; SimpleQueue.put
        # may be called from __del__ (it is reentrant), which post() relies on
        self._queue = queue.SimpleQueue()
        self._mailbox = None            # the _Mailbox of the loop whose call ran last (worker thread)
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)   # constant
        self.thread.start()

    def call(self, fn, *args, **kwargs) -> "asyncio.Future[Any]":
        """Queue fn(*args, **kwargs); the future (of the running loop) gets its result or exception."""
        future = asyncio.get_running_loop().create_future()
        self._queue.put((future, fn, args, kwargs))
        return future

    def post(self, fn, *args):
        """Queue fn(*args) with nobody waiting for it (closing what a dropped object left open)."""
        self._queue.put((None, fn, args, {}))

    def stop(self):
        """The thread ends after the calls queued before this one."""
        self._queue.put(None)

    def _run(self):
        while True:
            item = self._queue.get()
            if item is None:
                return
            future, fn, args, kwargs = item
            if future is None:
                try:
                    fn(*args)
                except Exception:
                    pass            # a cleanup of something already gone (its database closed)
                continue
            if future.cancelled():
                continue            # the awaiting task was cancelled before the call started
            try:
                outcome = (_set_result, fn(*args, **kwargs))
            except BaseException as exc:
                outcome = (_set_exception, exc)
            # hold nothing once the task can resume: a scan its loop then drops must be freed
            # (and its snapshot closed) at once, not when this thread's next call arrives
            item = fn = args = kwargs = None
            loop = future.get_loop()
            if self._mailbox is None or self._mailbox.loop is not loop:
                self._mailbox = _Mailbox(loop)
            self._mailbox.put(future, *outcome)
            outcome = future = loop = None


class _Mailbox:
    """The results for one event loop. The worker adds each as its call ends, and wakes the loop
    only when no wake is pending: many calls that end close together (many tasks' gets) cost the
    loop one wake-up, not one each, while no result waits for the next call to end."""

    def __init__(self, loop):
        self.loop = loop                        # constant
        self.results = collections.deque()      # (future, setter, value) not yet handed out
        self.scheduled = False                  # a drain() is queued on the loop and has not begun

    def put(self, future, setter, value):       # on the worker
        self.results.append((future, setter, value))
        if not self.scheduled:
            self.scheduled = True
            try:
                self.loop.call_soon_threadsafe(self.drain)
            except RuntimeError:
                self.results.clear()            # the loop is closed: nobody is waiting any more

    def drain(self):                            # on the loop
        self.scheduled = False                  # first: a result added from here on schedules another drain
        results = self.results
        while results:
            future, setter, value = results.popleft()
            setter(future, value)


def _set_result(future, result):
    if not future.done():           # not cancelled while the call ran
        future.set_result(result)


def _set_exception(future, exc):
    if not future.done():
        future.set_exception(exc)


def _retrieve(future):
    if not future.cancelled():
        future.exception()          # marks it retrieved: no "exception was never retrieved" log


async def _to_the_end(future):
    """Await a call that must complete even if this task is cancelled (commit, rollback, close)."""
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        future.add_done_callback(_retrieve)
        raise


# -- opening ----------------------------------------------------------------------------------------

def open(path, **keywords) -> "_Opening":
    """Open the database at `path` with kvdb.open's keywords (engine=, sync=, readonly=, ...).

    `db = await kvdb.aio.open(path)`, or `async with kvdb.aio.open(path) as db:` (closes it at
    the end). The open itself runs on the database's new worker thread."""
    return _Opening(path, keywords)


class _Opening:
    """What open() returns: awaitable (-> Database) and an async context manager."""

    def __init__(self, path, keywords):
        self._path = path               # as given to open()
        self._keywords = keywords       # kvdb.open's keywords
        self._database = None           # the Database, once __aenter__ opened it

    def __await__(self) -> Generator[Any, None, "Database"]:
        return self._open().__await__()

    async def __aenter__(self) -> "Database":
        self._database = await self._open()
        return self._database

    async def __aexit__(self, *exc) -> bool:
        await self._database.close()
        return False

    async def _open(self):
        worker = _Worker(f"kvdb.aio {self._path}")
        opened = []                     # the core Database, once the thread has opened it

        def open_on_worker():
            opened.append(kvdb.open(self._path, **self._keywords))
            return opened[0]
        try:
            db = await worker.call(open_on_worker)
        except asyncio.CancelledError:
            worker.post(_close_all, opened)     # runs after the open, if that had started
            worker.stop()
            raise
        except BaseException:
            worker.stop()
            raise
        return Database(worker, db)


def _close_all(objects):
    for o in objects:
        o.close()


# -- handles: what a database, a namespace, a transaction and a snapshot have in common -------------

class _Handle:
    """The key-value calls of a core handle (kvdb.Database, a namespace, a Transaction, a
    Snapshot), run on the worker and awaited. Each takes the arguments of the synchronous method
    it is named after and raises what that raises (a snapshot's put: ReadOnlyError)."""

    _worker: "_Worker"                  # the thread the calls run on

    @property
    def _handle(self) -> Any:
        """The core handle; ClosedError when there is none (an ended transaction)."""
        raise NotImplementedError

    def _call(self, fn, *args, **kwargs) -> "asyncio.Future[Any]":
        """Queue fn(*args, **kwargs) on the worker; ClosedError if this handle can no longer be used."""
        raise NotImplementedError

    async def get(self, key: Any, default: Any = None) -> Any:
        return await self._call(self._handle.get, key, default)

    async def contains(self, key: Any) -> bool:
        """`key in handle`."""
        return await self._call(self._handle.__contains__, key)

    async def count(self) -> int:
        """`len(handle)`: the keys present (len() itself cannot be awaited)."""
        return await self._call(len, self._handle)

    async def ttl(self, key: Any) -> Optional[float]:
        """Seconds `key` has left, None if it has no expiry; KeyError if it is absent."""
        return await self._call(self._handle.ttl, key)

    async def put(self, key: Any, value: Any, ttl: Optional[float] = None) -> None:
        await self._call(self._handle.put, key, value, ttl)

    async def delete(self, key: Any) -> bool:
        """Delete `key`; whether it was present."""
        return await self._call(self._handle.delete, key)

    async def discard(self, key: Any) -> None:
        await self._call(self._handle.discard, key)

    async def persist(self, key: Any) -> bool:
        return await self._call(self._handle.persist, key)

    def scan(self, start: Any = None, end: Any = None, prefix: Any = None, reverse: bool = False, *,
             batch_size: int = SCAN_BATCH, **options: Any) -> "ScanIterator":
        """`async for key, value in handle.scan(...)`: the synchronous scan's arguments (and any
        further keyword it accepts), read over one snapshot taken when the first batch is
        fetched. Items come from the worker in batches of up to `batch_size`. Leaving the loop
        early closes the scan when the iterator is dropped; `async with handle.scan(...) as it:`
        or `await it.aclose()` closes it at a known point."""
        handle = self._handle
        return ScanIterator(self, lambda: handle.scan(start=start, end=end, prefix=prefix, reverse=reverse,
                                                      **options), batch_size)

    # The calls the core gained in issue 16, each offered when kvdb.Database has it.

    if hasattr(kvdb.Database, "put_many"):
        async def put_many(self, pairs: Any) -> Any:
            """handle.put_many(pairs), in one commit; `pairs` is iterated on the worker thread."""
            return await self._call(self._handle.put_many, pairs)

    if hasattr(kvdb.Database, "update"):
        async def update(self, *args: Any, **kwargs: Any) -> None:
            """handle.update(...), in one commit; an iterable argument is iterated on the worker thread."""
            await self._call(self._handle.update, *args, **kwargs)

    if hasattr(kvdb.Database, "pop"):
        async def pop(self, key: Any, *default: Any) -> Any:
            """handle.pop(key[, default]): remove `key` and return its value, atomically."""
            return await self._call(self._handle.pop, key, *default)

    if hasattr(kvdb.Database, "setdefault"):
        async def setdefault(self, key: Any, default: Any = None) -> Any:
            return await self._call(self._handle.setdefault, key, default)

    if hasattr(kvdb.Database, "clear"):
        async def clear(self) -> None:
            """handle.clear(): delete every key (on the worker, in commits of many keys each)."""
            await self._call(self._handle.clear)

    if hasattr(kvdb.Database, "cursor"):
        def cursor(self) -> "KeyCursor":
            """A KeyCursor over this handle's keys (seek, seek_first, seek_last, next, prev awaited;
            key, value, valid and item() read without a trip), made on the worker at its first move."""
            handle = self._handle
            return KeyCursor(self, handle.cursor)

    if hasattr(kvdb.Database, "namespace"):
        def namespace(self, name: Any, **options: Any) -> "Namespace":
            """The namespace `name` of this handle (the synchronous namespace()'s keywords: keys=,
            values=), whose calls run on the worker; of a transaction, inside the transaction."""
            return Namespace(self, self._handle.namespace(name, **options))    # a handle: reads nothing


class Namespace(_Handle):
    """db.namespace(name) (also tx.namespace, snap.namespace): a key space of its own, with the
    key-value calls of a Database, run on the database's worker."""

    def __init__(self, owner, namespace):
        self._owner = owner             # the Database, Transaction or Snapshot it belongs to; constant
        self._namespace = namespace     # the core namespace handle; constant
        self._worker = owner._worker    # constant
        self.name = namespace.name      # constant

    def __repr__(self):
        return f"<kvdb.aio.Namespace {self.name!r} of {self._owner!r}>"

    @property
    def _handle(self) -> Any:
        return self._namespace

    def _call(self, fn, *args, **kwargs):
        return self._owner._call(fn, *args, **kwargs)      # refused once the owner is closed or ended


# -- the database -----------------------------------------------------------------------------------

class Database(_Handle):
    """An open kvdb database whose calls run on its worker thread; made by `await kvdb.aio.open()`."""

    def __init__(self, worker, db):
        self._worker = worker           # the thread every call of this database runs on; constant
        self._db = db                   # the kvdb.Database; touched only on the worker thread
        self._closing = None            # None while open; then the future of the close on the worker
        self.path = db.path             # constant
        self.engine = db.engine         # constant
        self.readonly = db.readonly     # constant

    def __repr__(self):
        return f"<kvdb.aio.Database {self.path!r} engine={self.engine} {'closed' if self._closing else 'open'}>"

    @property
    def _handle(self) -> Any:
        return self._db

    def _call(self, fn, *args, **kwargs) -> "asyncio.Future[Any]":
        """Queue fn(*args, **kwargs) on the worker; ClosedError once close() has begun."""
        if self._closing is not None:
            raise ClosedError(f"database {self.path} is closed")
        return self._worker.call(fn, *args, **kwargs)

    async def run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """fn(db, *args, **kwargs) on the worker thread, with the synchronous kvdb.Database: for
        calls this wrapper does not offer. fn must not keep `db` or use it from another thread."""
        return await self._call(fn, self._db, *args, **kwargs)

    # -- transactions, snapshots, documents ------------------------------------------------

    def transaction(self) -> "Transaction":
        """`async with db.transaction() as tx:` commits at the end of the block and rolls back if
        it raises. A conflicting commit raises kvdb.ConflictError: run the whole block again."""
        return Transaction(self)

    def snapshot(self) -> "Snapshot":
        """`async with db.snapshot() as snap:` a read-only view of one version."""
        return Snapshot(self)

    def collection(self, name: str) -> "Collection":
        """The document collection `name` (kvdb.documents), whose calls run on the worker."""
        if self._closing is not None:
            raise ClosedError(f"database {self.path} is closed")
        return Collection(self, documents.collection_of(self._db, name))    # a handle: reads nothing

    async def list_collections(self) -> List[str]:
        return await self._call(documents.list_collections, self._db)

    async def drop_collection(self, name: str) -> bool:
        return await self._call(documents.drop_collection, self._db, name)

    if hasattr(kvdb.Database, "namespaces"):
        async def namespaces(self) -> list:
            return await self._call(self._db.namespaces)

    if hasattr(kvdb.Database, "drop_namespace"):
        async def drop_namespace(self, name: Any) -> Any:
            return await self._call(self._db.drop_namespace, name)

    # -- maintenance -----------------------------------------------------------------------

    async def stats(self) -> dict:
        return await self._call(self._db.stats)

    async def checkpoint(self) -> None:
        await self._call(self._db.checkpoint)

    async def verify(self) -> bool:
        return await self._call(self._db.verify)

    async def compact(self, start: Any = None, end: Any = None) -> None:
        await self._call(self._db.compact, start, end)

    async def backup(self, dest: str) -> None:
        await self._call(self._db.backup, dest)

    async def close(self) -> None:
        """Close after the calls already queued: the database closes on the worker thread, then
        the thread ends. Idempotent; runs to its end even if the awaiting task is cancelled."""
        if self._closing is None:
            self._closing = self._worker.call(self._db.close)
            self._worker.stop()
        await _to_the_end(self._closing)
        self._worker.thread.join()      # it has only the stop left to read

    async def __aenter__(self) -> "Database":
        return self

    async def __aexit__(self, *exc) -> bool:
        await self.close()
        return False

    def __del__(self):
        # dropped without close(): close on the worker (the log already holds every commit), so
        # the thread ends instead of waiting forever
        if getattr(self, "_closing", True) is None:
            self._worker.post(self._db.close)
            self._worker.stop()



class _Batches:
    """An async iterator over a synchronous iterator that lives on the worker thread, fetched in
    batches: FIRST_BATCH items, then twice as many each trip, up to the batch size."""

    def __init__(self, runner, open_source, batch_size):
        if type(batch_size) is not int or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, not {batch_size!r}")
        self._runner = runner           # the Database, Transaction or Snapshot whose _call runs the trips
        self._open_source = open_source # () -> the synchronous iterator (with close()); on the worker
        self._source = None             # that iterator, between its opening and its closing (worker)
        self._limit = batch_size        # most items per trip
        self._size = min(FIRST_BATCH, batch_size)   # items the next trip fetches
        self._buffer = collections.deque()          # fetched, not yet handed out (loop thread)
        self._done = False              # the source is exhausted or closed: nothing more to fetch

    def __aiter__(self: _B) -> _B:
        return self

    async def __anext__(self) -> Any:
        if not self._buffer:
            if self._done:
                raise StopAsyncIteration
            self._buffer.extend(await self._trip(self._size))
            self._size = min(self._size * 2, self._limit)
            if not self._buffer:
                raise StopAsyncIteration
        return self._buffer.popleft()

    async def _trip(self, n):
        """Up to n more items (n None: all of them), fetched on the worker in one call."""
        try:
            batch = await self._runner._call(self._fetch, n)
        except asyncio.CancelledError:
            self._done = True
            self._runner._worker.post(self._close_source)   # after the fetch, if it had started
            raise
        except BaseException:
            self._done = True
            self._release()
            raise
        if n is None or len(batch) < n:
            self._done = True           # _fetch closed the source
        return batch

    def _fetch(self, n):                # on the worker
        if self._source is None:
            if self._done:
                return []
            self._source = self._open_source()
        batch = list(self._source) if n is None else list(itertools.islice(self._source, n))
        if n is None or len(batch) < n:
            self._close_source()
        return batch

    def _close_source(self):            # on the worker
        source, self._source = self._source, None
        if source is not None:
            source.close()

    def _release(self):
        """Close the source on the worker, nobody waiting (its database may be closed already)."""
        if self._source is not None:
            self._runner._worker.post(self._close_source)

    async def aclose(self) -> None:
        """Stop early: the source (and the snapshot it pins) is closed on the worker."""
        self._done = True
        self._buffer.clear()
        if self._source is not None:
            try:
                await self._runner._call(self._close_source)
            except ClosedError:
                pass                    # the database closed it

    async def __aenter__(self: _B) -> _B:
        return self

    async def __aexit__(self, *exc) -> bool:
        await self.aclose()
        return False

    def __del__(self):
        # dropped by a loop that ended early: the worker closes what is still open
        if getattr(self, "_source", None) is not None:
            self._runner._worker.post(self._source.close)


class ScanIterator(_Batches):
    """`async for key, value in db.scan(...)` (also tx.scan, snap.scan)."""


class KeyCursor:
    """handle.cursor(): a position in the keys that moves both ways, reading one version (the
    core's Cursor). Each move is one trip to the worker and returns whether the cursor is at a
    key; key, value, valid and item() describe the position the last move reached. Close it
    (`await cur.close()`, or `async with handle.cursor() as cur:`) to release its snapshot; a
    dropped cursor is closed on the worker."""

    def __init__(self, runner, make):
        self._runner = runner           # the handle whose _call runs the moves; constant
        self._make = make               # () -> the core cursor; called on the worker by the first move
        self._cursor = None             # the core cursor, from the first move to close (worker)
        self._item = None               # (key, value) where the last move stopped, None if not at a key
        self._closed = False            # close() was called

    def _move_on_worker(self, method, args):
        if self._cursor is None:
            self._cursor = self._make()
        moved = getattr(self._cursor, method)(*args)
        return moved, self._cursor.item()

    async def _move(self, method, *args):
        if self._closed:
            raise ClosedError("cursor is closed")
        moved, self._item = await self._runner._call(self._move_on_worker, method, args)
        return moved

    async def seek(self, key: Any) -> bool:
        """Move to the first key >= key; False (and not valid) if there is none."""
        return await self._move("seek", key)

    async def seek_first(self) -> bool:
        return await self._move("seek_first")

    async def seek_last(self) -> bool:
        return await self._move("seek_last")

    async def next(self) -> bool:
        """Move to the next key (the first, if unpositioned); False past the last."""
        return await self._move("next")

    async def prev(self) -> bool:
        """Move to the previous key (the last, if unpositioned); False before the first."""
        return await self._move("prev")

    @property
    def valid(self) -> bool:
        return self._item is not None

    @property
    def key(self) -> Any:
        return None if self._item is None else self._item[0]

    @property
    def value(self) -> Any:
        return None if self._item is None else self._item[1]

    def item(self) -> Any:
        return self._item

    def _close_on_worker(self):
        cursor, self._cursor = self._cursor, None
        if cursor is not None:
            cursor.close()

    async def close(self) -> None:
        self._closed = True
        self._item = None
        if self._cursor is not None:
            try:
                await self._runner._call(self._close_on_worker)
            except ClosedError:
                pass                    # its database or transaction ended it

    async def __aenter__(self) -> "KeyCursor":
        return self

    async def __aexit__(self, *exc) -> bool:
        await self.close()
        return False

    def __del__(self):
        if getattr(self, "_cursor", None) is not None:
            self._runner._worker.post(self._cursor.close)


# -- transactions and snapshots ---------------------------------------------------------------------

class _View(_Handle):
    """A transaction or snapshot of the core, made on the worker by __aenter__ and ended by
    __aexit__ there; between them its calls run on the worker too."""

    _make: Callable[[Any], Any]         # the core Database -> the core view; per subclass
    _commits: bool                      # the end of a block without an exception commits; per subclass

    def __init__(self, database):
        self._database = database       # the aio Database; constant
        self._view = None               # the core Transaction or Snapshot while open (set on the worker)
        self._worker = database._worker # constant

    def _open_view(self):
        """The core view; ClosedError once it ended or before `async with` began it."""
        view = self._view
        if view is None:
            raise ClosedError(f"{type(self).__name__.lower()} is not open: it ended, or `async with` has not "
                              "begun it")
        return view

    @property
    def _handle(self) -> Any:
        return self._open_view()

    def _call(self, fn, *args, **kwargs):
        self._open_view()
        return self._database._call(fn, *args, **kwargs)

    def _begin(self):                   # on the worker
        self._view = self._make(self._database._db)

    def _abandon(self):                 # on the worker
        view, self._view = self._view, None
        if view is not None:
            view.__exit__(ClosedError, None, None)      # roll back / release

    async def __aenter__(self: _V) -> _V:
        try:
            await self._database._call(self._begin)
        except asyncio.CancelledError:
            self._worker.post(self._abandon)    # after the begin, if that had started
            raise
        return self

    async def __aexit__(self, exc_type, exc, tb) -> bool:
        view = self._view
        if view is None:
            return False                # ended already (commit(), rollback())
        if self._database._closing is not None:
            self._view = None
            if exc_type is None and self._commits:
                raise ClosedError(f"database {self._database.path} was closed before the transaction committed")
            return False                # the database's close ended it
        # commits a transaction (exc_type None) or rolls it back; closes a snapshot
        await self._end(view.__exit__, exc_type, None, None)
        return False

    async def _end(self, fn, *args):
        """Run fn(*args), which ends the view, to its end; the view is unusable from here on."""
        try:
            await _to_the_end(self._call(fn, *args))
        finally:
            self._view = None

    def __del__(self):
        # left without __aexit__ (an __aenter__ called by hand): the worker ends the view
        if getattr(self, "_view", None) is not None:
            self._worker.post(self._view.__exit__, ClosedError, None, None)


class Transaction(_View):
    """`async with db.transaction() as tx:` an optimistic transaction (kvdb.Database.transaction):
    commits at the end of the block, rolls back if the block raises. A conflict raises
    kvdb.ConflictError from the `async with`; run the block again. Every engine call of the
    transaction runs on the database's worker thread."""

    _make = staticmethod(lambda db: db.transaction())
    _commits = True

    def collection(self, name: str) -> "Collection":
        """The document collection `name`, read and written inside this transaction."""
        return Collection(self, documents.collection_of(self._handle, name))

    async def commit(self) -> None:
        """Commit now (the block's end then has nothing left to do); the transaction ends."""
        await self._end(self._handle.commit)

    async def rollback(self) -> None:
        """Drop the transaction's writes now; the transaction ends."""
        await self._end(self._handle.rollback)


class Snapshot(_View):
    """`async with db.snapshot() as snap:` a read-only view of one version, released at the end."""

    _make = staticmethod(lambda db: db.snapshot())
    _commits = False



class Collection:
    """A kvdb.documents.Collection whose calls run on the database's worker thread and are
    awaited; find() returns a Cursor (`await cursor.to_list()`, `async for doc in cursor`)."""

    def __init__(self, runner, collection):
        self._runner = runner           # the Database or Transaction whose _call runs the calls; constant
        self._collection = collection   # the kvdb.documents.Collection; constant
        self.name = collection.name     # constant

    def __repr__(self):
        return f"kvdb.aio.Collection({self.name!r})"

    def _call(self, method, *args, **kwargs):
        return self._runner._call(getattr(self._collection, method), *args, **kwargs)

    async def insert_one(self, document: dict) -> Any:
        return await self._call("insert_one", document)

    async def insert_many(self, documents: Any, ordered: bool = True) -> Any:
        return await self._call("insert_many", documents, ordered)

    def find(self, filter: Optional[dict] = None, projection: Any = None, skip: int = 0, limit: int = 0,
             sort: Any = None) -> "Cursor":
        """A Cursor; nothing is read until it is iterated or to_list() is awaited."""
        return Cursor(self._runner, self._collection.find(filter, projection, skip, limit, sort))

    async def find_one(self, filter: Any = None, projection: Any = None, sort: Any = None, skip: int = 0) -> Any:
        """The first matching document or None; a filter that is not a dict means {"_id": filter}."""
        return await self._runner._call(self._collection.find_one, filter, projection, sort, skip)

    async def count_documents(self, filter: dict, skip: int = 0, limit: int = 0) -> int:
        return await self._call("count_documents", filter, skip, limit)

    async def estimated_document_count(self) -> int:
        return await self._call("estimated_document_count")

    async def distinct(self, key: str, filter: Optional[dict] = None) -> list:
        return await self._call("distinct", key, filter)

    async def update_one(self, filter: dict, update: Any, upsert: bool = False) -> Any:
        return await self._call("update_one", filter, update, upsert)

    async def update_many(self, filter: dict, update: Any, upsert: bool = False) -> Any:
        return await self._call("update_many", filter, update, upsert)

    async def replace_one(self, filter: dict, replacement: dict, upsert: bool = False) -> Any:
        return await self._call("replace_one", filter, replacement, upsert)

    async def delete_one(self, filter: dict) -> Any:
        return await self._call("delete_one", filter)

    async def delete_many(self, filter: dict) -> Any:
        return await self._call("delete_many", filter)

    async def find_one_and_delete(self, filter: dict, projection: Any = None, sort: Any = None) -> Any:
        return await self._call("find_one_and_delete", filter, projection, sort)

    async def find_one_and_update(self, filter: dict, update: Any, projection: Any = None, sort: Any = None,
                                  upsert: bool = False, return_document: Any = False) -> Any:
        return await self._call("find_one_and_update", filter, update, projection, sort, upsert, return_document)

    async def find_one_and_replace(self, filter: dict, replacement: dict, projection: Any = None, sort: Any = None,
                                   upsert: bool = False, return_document: Any = False) -> Any:
        return await self._call("find_one_and_replace", filter, replacement, projection, sort, upsert,
                                return_document)

    async def create_index(self, keys: Any, unique: bool = False, name: Optional[str] = None, **kwargs: Any) -> str:
        """As Collection.create_index; a `progress` callback is called on the worker thread."""
        return await self._call("create_index", keys, unique, name, **kwargs)

    async def drop_index(self, index_or_name: Any) -> None:
        await self._call("drop_index", index_or_name)

    async def drop_indexes(self) -> None:
        await self._call("drop_indexes")

    async def list_indexes(self) -> list:
        return await self._call("list_indexes")

    async def index_information(self) -> dict:
        return await self._call("index_information")

    async def drop(self) -> None:
        await self._call("drop")


class Cursor(_Batches):
    """The documents of a find(): `await cursor.to_list(length=None)` or `async for doc in cursor`.
    sort/skip/limit chain until the first document is fetched; documents come from the worker
    thread in batches, read from one snapshot (on a Database) from the first to the last."""

    def __init__(self, runner, cursor):
        super().__init__(runner, lambda: iter(cursor), SCAN_BATCH)
        self._cursor = cursor           # the kvdb.documents Cursor; changed only before the first fetch

    def sort(self, key_or_list: Any, direction: Any = None) -> "Cursor":
        self._cursor.sort(key_or_list, direction)
        return self

    def skip(self, n: int) -> "Cursor":
        self._cursor.skip(n)
        return self

    def limit(self, n: int) -> "Cursor":
        self._cursor.limit(n)
        return self

    async def to_list(self, length: Optional[int] = None) -> list:
        """The remaining documents, at most `length` of them (None: all), in one trip."""
        if length is not None and (type(length) is not int or length < 0):
            raise ValueError(f"length must be None or a non-negative int, not {length!r}")
        out: List[Any] = []
        while self._buffer and (length is None or len(out) < length):
            out.append(self._buffer.popleft())
        if not self._done and (length is None or len(out) < length):
            out.extend(await self._trip(None if length is None else length - len(out)))
        return out

    async def next(self) -> Any:
        """The next document; StopAsyncIteration at the end."""
        return await self.__anext__()

    async def close(self) -> None:
        await self.aclose()

    async def explain(self) -> dict:
        return await self._runner._call(self._cursor.explain)

    async def distinct(self, key: str) -> list:
        return await self._runner._call(self._cursor.distinct, key)
