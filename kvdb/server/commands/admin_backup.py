"""BACKUP <name>: a consistent copy of the server's database, made while it serves.

The copy is db.backup() of one committed version (B+Tree: the pages that version
reaches; LSM: its keys, with their expiries, in a new database), written into
`<backup-dir>/<name>` on a worker thread, so other clients are served meanwhile.
The version is at least as new as the commit of the command group BACKUP ran in:
every write acknowledged before BACKUP, and every write the same connection sent
before it, is in the copy. The client gets +OK once the copy is complete and
durable; its later commands wait for that reply, as after a blocking command.

The steps, so that `<name>` only ever holds a whole copy:
  1. mkdir `<backup-dir>/<name>`: claims the name (an error if it exists);
  2. after the group's commit, db.backup() into `<backup-dir>/.<name>.partial-PID`;
  3. fsync every file of the copy and its directory;
  4. rename the copy over the claimed (empty) directory, fsync `<backup-dir>` and its parent.
A failure removes both and replies the error; a crash can leave the empty claimed
directory and the partial one, never a partial copy under `<name>`.

backup-dir is set at start only (CONFIG SET refuses it): a client could otherwise
have the server write a copy of the database anywhere it may write.
"""
import logging
import os
import shutil
import weakref

from kvdb.server.protocol.resp import OK, ErrorReply

from ..acl_user import NOT_IN_MULTI
from .registry import NO_REPLY, CommandError, command

log = logging.getLogger("kvdb.server")

DISABLED = "ERR BACKUP is disabled: set backup-dir"
BAD_NAME = "ERR invalid backup name: give a plain file name (no '/', not '.' or '..')"
RUNNING = "ERR a backup is already in progress"

_running = weakref.WeakSet()   # servers with a backup in progress (one at a time each); loop thread only


@command("backup", 2, "admin noscript", "@admin @dangerous @slow", group="server", since="kvdb 0.1",
         summary="Writes a consistent copy of the database into backup-dir/<name>, online.")
def backup(c, args):
    server = c.server
    if c.in_exec:
        raise CommandError(NOT_IN_MULTI)   # it replies later, which a transaction's reply cannot wait for
    root = server.config["backup-dir"]
    if not root:
        raise CommandError(DISABLED)
    name = _name(args[1])
    if server in _running:
        raise CommandError(RUNNING)
    root = os.path.abspath(root)
    data = os.path.abspath(server.config["dir"])
    if root == data or root.startswith(data.rstrip(os.sep) + os.sep):
        raise CommandError("ERR backup-dir is inside the data directory; set it to a directory outside it")
    final = os.path.join(root, name)
    try:
        os.makedirs(root, exist_ok=True)
        os.mkdir(final)                    # claims the name; FileExistsError if it is taken
    except FileExistsError:
        raise CommandError(f"ERR backup destination {name!r} already exists in backup-dir") from None
    except OSError as e:
        raise CommandError(f"ERR cannot create the backup in backup-dir: {e.strerror or e}") from None
    _running.add(server)
    c.blocked = True
    partial = os.path.join(root, f".{name}.partial-{os.getpid()}")
    log.info("BACKUP %s by %s: started", final, c.addr)

    def start():
        # After this group's commit (on the loop; with sync=full a task queued behind its fsync
        # on the worker runs once that is done). The copy itself runs elsewhere, so the
        # commits of later groups go on meanwhile.
        try:
            server.loop.run_in_executor(server.executor, _nothing).add_done_callback(copy)
        except RuntimeError as e:          # the server is stopping: its workers are shut down
            finish(e)

    def copy(_barrier):
        try:
            server.loop.run_in_executor(None, _write_copy, server.db, partial, final, root).add_done_callback(
                lambda fut: finish(fut.exception()))
        except RuntimeError as e:
            finish(e)

    def finish(error):
        _running.discard(server)
        if error is None:
            log.info("BACKUP %s: done", final)
            reply = OK
        else:
            log.error("BACKUP %s failed: %s", final, error)
            _remove(partial, final)
            reply = ErrorReply(f"ERR backup failed: {error}")
        c.blocked = False
        c.replies.append(reply)
        server.to_flush.add(c)
        if c.transport is not None:
            server.schedule(c)     # runs what the client sent meanwhile, then flushes

    server.loop.call_soon(start)
    return NO_REPLY


def _name(raw):
    """The backup's directory name from the argument, or CommandError: one path component."""
    name = os.fsdecode(raw)
    if not name or name in (".", "..") or "/" in name or "\0" in name or (os.altsep and os.altsep in name):
        raise CommandError(BAD_NAME)
    return name


def _nothing():
    return None


def _write_copy(db, partial, final, root):
    """db.backup() into partial, made durable, then renamed to final (an empty directory that
    claims the name). Runs on a worker thread; a failure leaves the cleaning up to _remove."""
    if db is None:
        raise RuntimeError("the server is stopping")
    db.backup(partial)
    _fsync_tree(partial)
    os.rename(partial, final)              # replaces the empty claimed directory
    _fsync(root)
    _fsync(os.path.dirname(root))          # backup-dir itself, in case this BACKUP created it


def _remove(partial, final):
    """Undo a failed backup: the partial copy, and the claimed name while it is still empty."""
    shutil.rmtree(partial, ignore_errors=True)
    try:
        os.rmdir(final)                    # not empty (the rename happened): the copy stays
    except OSError:
        pass


def _fsync_tree(path):
    """fsync every regular file under path, then each directory (deepest first)."""
    for top, dirs, files in os.walk(path, topdown=False):
        for name in files:
            full = os.path.join(top, name)
            if os.path.isfile(full) and not os.path.islink(full):
                fd = os.open(full, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
        _fsync(top)


def _fsync(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
