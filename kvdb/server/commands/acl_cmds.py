"""ACL SETUSER GETUSER DELUSER LIST USERS WHOAMI CAT SAVE LOAD LOG GENPASS DRYRUN
(the model and rules live in kvdb/server/acl.py)."""
import secrets

from kvdb.server.protocol.resp import OK

from .. import acl_user as aclmod
from .registry import COMMANDS, CommandError, container, int_arg, subcommand, lookup

ADMIN = "admin noscript loading stale"
PLAIN = "noscript loading stale"

container("acl", -2, "", "", summary="A container for Access List Control commands.", group="server",
          since="6.0.0")


def _acl(c):
    return c.server.acl


def _name(b):
    return b.decode("utf-8", "surrogateescape")


def _run(fn, *a):
    try:
        return fn(*a)
    except aclmod.AclError as e:
        raise CommandError(str(e)) from None


@subcommand("acl", "setuser", -3, ADMIN, "", summary="Creates and modifies an ACL user and its rules.",
            since="6.0.0")
def acl_setuser(c, args):
    _run(_acl(c).setuser, _name(args[2]), [_name(a) for a in args[3:]])
    return OK


@subcommand("acl", "getuser", 3, ADMIN, "", summary="Lists the ACL rules of a user.", since="6.0.0")
def acl_getuser(c, args):
    user = _acl(c).users.get(_name(args[2]))
    if user is None:
        return None
    return {"flags": [f.encode() for f in user.flags()],
            "passwords": [h.encode() for h in user.passwords],
            "commands": user.commands_text().encode(),
            "keys": user.keys_text().encode(),
            "channels": user.channels_text().encode(),
            "selectors": []}


@subcommand("acl", "deluser", -3, ADMIN, "", summary="Deletes ACL users, and terminates their connections.",
            since="6.0.0")
def acl_deluser(c, args):
    return _run(_acl(c).deluser, [_name(a) for a in args[2:]])


@subcommand("acl", "list", 2, ADMIN, "", summary="Dumps the effective rules in ACL file format.", since="6.0.0")
def acl_list(c, args):
    return [u.describe().encode("utf-8", "surrogateescape") for u in _acl(c).users.values()]


@subcommand("acl", "users", 2, ADMIN, "", summary="Lists all ACL users.", since="6.0.0")
def acl_users(c, args):
    return [n.encode("utf-8", "surrogateescape") for n in sorted(_acl(c).users)]


@subcommand("acl", "whoami", 2, PLAIN, "", summary="Returns the authenticated username of the current connection.",
            since="6.0.0")
def acl_whoami(c, args):
    return c.user.name.encode("utf-8", "surrogateescape")


@subcommand("acl", "cat", -2, PLAIN, "", summary="Lists the ACL categories, or the commands inside a category.",
            since="6.0.0")
def acl_cat(c, args):
    if len(args) == 2:
        return [n.encode() for n in aclmod.CATEGORIES]
    if len(args) > 3:
        raise CommandError("ERR wrong number of arguments for 'acl|cat' command")
    cat = args[2].decode("utf-8", "replace").lower().lstrip("@")
    if cat not in aclmod.CATEGORIES:
        raise CommandError(f"ERR Unknown category '{cat}'")
    out = []
    for cmd in COMMANDS.values():
        if cat in cmd.categories:
            out.append(cmd.fullname.encode())
        out += [s.fullname.encode() for s in cmd.subcommands.values() if cat in s.categories]
    return out


@subcommand("acl", "save", 2, ADMIN, "", summary="Saves the effective ACL rules in the configured ACL file.",
            since="6.0.0")
def acl_save(c, args):
    _run(_acl(c).save_file)
    return OK


@subcommand("acl", "load", 2, ADMIN, "", summary="Reloads the rules from the configured ACL file.", since="6.0.0")
def acl_load(c, args):
    _run(_acl(c).load_file)
    return OK


@subcommand("acl", "log", -2, ADMIN, "", summary="Lists recent security events generated due to ACL rules.",
            since="6.0.0")
def acl_log(c, args):
    acl = _acl(c)
    if len(args) > 3:
        raise CommandError("ERR wrong number of arguments for 'acl|log' command")
    if len(args) == 3:
        if args[2].lower() == b"reset":
            acl.log.clear()
            return OK
        count = int_arg(args[2], "ERR value is out of range, must be positive")
        if count < 0:
            raise CommandError("ERR value is out of range, must be positive")
    else:
        count = 10
    return [e.reply() for e in acl.log[:count]]


@subcommand("acl", "genpass", -2, PLAIN, "", summary="Generates a pseudorandom, secure password for ACL users.",
            since="6.0.0")
def acl_genpass(c, args):
    bits = int_arg(args[2]) if len(args) > 2 else 256
    if not 0 < bits <= 4096:
        raise CommandError("ERR ACL GENPASS argument must be the number of bits for the output password, a "
                           "positive number up to 4096")
    return secrets.token_hex((bits + 7) // 8)[:(bits + 3) // 4].encode()


@subcommand("acl", "dryrun", -4, ADMIN, "", summary="Simulates the execution of a command by a user, without "
            "executing the command.", since="7.0.0")
def acl_dryrun(c, args):
    user = _acl(c).users.get(_name(args[2]))
    if user is None:
        raise CommandError(f"ERR User '{_name(args[2])}' not found")
    cmd, error = lookup(args[3:])
    if cmd is None:
        raise CommandError(error)
    found = aclmod.denial(user, cmd, args[3:])
    return found[2].encode() if found else OK


@subcommand("acl", "help", 2, "loading stale", "", summary="Returns helpful text about the different subcommands.",
            since="6.0.0")
def acl_help(c, args):
    return [b"ACL <subcommand> [<arg> [value] [opt] ...]. Subcommands are:"] + [
        n.upper().encode() for n in sorted(COMMANDS["acl"].subcommands)]
