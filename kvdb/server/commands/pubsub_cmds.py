"""SUBSCRIBE UNSUBSCRIBE PSUBSCRIBE PUNSUBSCRIBE PUBLISH PUBSUB.

(Un)subscribe confirmations are pushes: one per channel, each carrying the
client's subscription count afterwards, as Redis sends them."""
from kvdb.server.protocol.resp import Push

from ..glob import glob_match
from .registry import NO_REPLY, command, container, subcommand


def _p(**kw):
    return dict(group="pubsub", **kw)


def _confirm(c, kind, name):
    c.replies.append(Push([kind, name, c.subscriptions]))


def _subscribe(c, names, join, kind):
    for name in names:
        join(c, name)
        _confirm(c, kind, name)
    return NO_REPLY


def _unsubscribe(c, names, current, leave, kind):
    """Leaves names, or everything in current when none are given (one confirmation each,
    or one with a nil name when there was nothing to leave)."""
    names = names or sorted(current)
    if not names:
        _confirm(c, kind, None)
    for name in names:
        leave(c, name)
        _confirm(c, kind, name)
    return NO_REPLY


@command("subscribe", -2, "pubsub noscript loading stale", "", **_p(summary="Listens for messages published to channels."))
def subscribe(c, args):
    return _subscribe(c, args[1:], c.server.pubsub.subscribe, b"subscribe")


@command("psubscribe", -2, "pubsub noscript loading stale", "",
         **_p(summary="Listens for messages published to channels that match one or more patterns."))
def psubscribe(c, args):
    return _subscribe(c, args[1:], c.server.pubsub.psubscribe, b"psubscribe")


@command("unsubscribe", -1, "pubsub noscript loading stale", "", **_p(summary="Stops listening to messages posted to channels."))
def unsubscribe(c, args):
    return _unsubscribe(c, args[1:], c.channels, c.server.pubsub.unsubscribe, b"unsubscribe")


@command("punsubscribe", -1, "pubsub noscript loading stale", "",
         **_p(summary="Stops listening to messages published to channels that match one or more patterns."))
def punsubscribe(c, args):
    return _unsubscribe(c, args[1:], c.patterns, c.server.pubsub.punsubscribe, b"punsubscribe")


@command("publish", 3, "pubsub loading stale fast", "", **_p(summary="Posts a message to a channel."))
def publish(c, args):
    return c.server.pubsub.publish(args[1], args[2])


container("pubsub", -2, "", "", summary="A container for Pub/Sub commands.", group="pubsub")


@subcommand("pubsub", "channels", -2, "pubsub loading stale", "", summary="Returns the active channels.")
def pubsub_channels(c, args):
    pattern = args[2] if len(args) > 2 else b"*"
    return [ch for ch in c.server.pubsub.channels if glob_match(pattern, ch)]


@subcommand("pubsub", "numsub", -2, "pubsub loading stale", "", summary="Returns a count of subscribers to channels.")
def pubsub_numsub(c, args):
    out = []
    for ch in args[2:]:
        out += [ch, len(c.server.pubsub.channels.get(ch, ()))]
    return out


@subcommand("pubsub", "numpat", 2, "pubsub loading stale", "", summary="Returns a count of unique pattern subscriptions.")
def pubsub_numpat(c, args):
    return len(c.server.pubsub.patterns)


@subcommand("pubsub", "help", 2, "loading stale", "", summary="Returns helpful text about the different subcommands.")
def pubsub_help(c, args):
    return [b"PUBSUB <subcommand> [<arg> [value] [opt] ...]. Subcommands are:", b"CHANNELS [<pattern>]",
            b"NUMSUB [<channel> ...]", b"NUMPAT"]
