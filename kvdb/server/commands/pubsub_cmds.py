"""SUBSCRIBE UNSUBSCRIBE PSUBSCRIBE PUNSUBSCRIBE PUBLISH PUBSUB.

(Un)subscribe confirmations are pushes: one per channel, each carrying the
client's subscription count afterwards, as Redis sends them."""
from kvdb._core.resp import Push

from ..glob import glob_match
from .registry import NO_REPLY, command, container, subcommand


def _p(**kw):
    return dict(group="pubsub", **kw)


def _confirm(c, kind, name):
    c.replies.append(Push([kind, name, c.subscriptions]))


@command("subscribe", -2, "pubsub noscript loading stale", "", **_p(summary="Listens for messages published to channels."))
def subscribe(c, args):
    for ch in args[1:]:
        c.server.pubsub.subscribe(c, ch)
        _confirm(c, b"subscribe", ch)
    return NO_REPLY


@command("psubscribe", -2, "pubsub noscript loading stale", "",
         **_p(summary="Listens for messages published to channels that match one or more patterns."))
def psubscribe(c, args):
    for p in args[1:]:
        c.server.pubsub.psubscribe(c, p)
        _confirm(c, b"psubscribe", p)
    return NO_REPLY


@command("unsubscribe", -1, "pubsub noscript loading stale", "", **_p(summary="Stops listening to messages posted to channels."))
def unsubscribe(c, args):
    channels = args[1:] or sorted(c.channels)
    if not channels:
        _confirm(c, b"unsubscribe", None)
    for ch in channels:
        c.server.pubsub.unsubscribe(c, ch)
        _confirm(c, b"unsubscribe", ch)
    return NO_REPLY


@command("punsubscribe", -1, "pubsub noscript loading stale", "",
         **_p(summary="Stops listening to messages published to channels that match one or more patterns."))
def punsubscribe(c, args):
    patterns = args[1:] or sorted(c.patterns)
    if not patterns:
        _confirm(c, b"punsubscribe", None)
    for p in patterns:
        c.server.pubsub.punsubscribe(c, p)
        _confirm(c, b"punsubscribe", p)
    return NO_REPLY


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
