"""Pub/sub: channel and pattern subscriptions, PUBLISH, and keyspace notifications
(notify-keyspace-events), delivered as RESP3 pushes or RESP2 arrays."""
from kvdb._core.resp import Push

from .glob import glob_match

# Keyspace event -> its notify-keyspace-events class letter.
EVENT_CLASS = {
    "del": "g", "expire": "g", "rename_from": "g", "rename_to": "g", "persist": "g", "copy_to": "g",
    "set": "$", "setrange": "$", "incrby": "$", "incrbyfloat": "$", "append": "$",
    "hset": "h", "hdel": "h", "hincrby": "h", "hincrbyfloat": "h",
    "expired": "x", "new": "n",
}
ALL_CLASSES = "g$lshzxetd"  # what 'A' stands for


class PubSub:
    def __init__(self, server):
        self.server = server         # for configuration and the flush set
        self.channels = {}           # channel -> set of Clients
        self.patterns = {}           # pattern -> set of Clients
        self.messages = 0            # messages delivered (INFO)

    @property
    def notifying(self):
        """Whether a keyspace notification could reach anyone now."""
        return bool((self.channels or self.patterns) and self.server.config["notify-keyspace-events"])

    def subscribe(self, c, channel):
        if channel in c.channels:
            return False
        c.channels.add(channel)
        self.channels.setdefault(channel, set()).add(c)
        return True

    def unsubscribe(self, c, channel):
        if channel not in c.channels:
            return False
        c.channels.discard(channel)
        subs = self.channels.get(channel)
        if subs is not None:
            subs.discard(c)
            if not subs:
                del self.channels[channel]
        return True

    def psubscribe(self, c, pattern):
        if pattern in c.patterns:
            return False
        c.patterns.add(pattern)
        self.patterns.setdefault(pattern, set()).add(c)
        return True

    def punsubscribe(self, c, pattern):
        if pattern not in c.patterns:
            return False
        c.patterns.discard(pattern)
        subs = self.patterns.get(pattern)
        if subs is not None:
            subs.discard(c)
            if not subs:
                del self.patterns[pattern]
        return True

    def drop_client(self, c):
        for ch in list(c.channels):
            self.unsubscribe(c, ch)
        for p in list(c.patterns):
            self.punsubscribe(c, p)

    def publish(self, channel, message):
        """Delivers to subscribers of channel and of matching patterns; returns receivers."""
        n = 0
        for c in self.channels.get(channel, ()):
            c.push(Push([b"message", channel, message]))
            n += 1
        for pattern, clients in self.patterns.items():
            if glob_match(pattern, channel):
                for c in clients:
                    c.push(Push([b"pmessage", pattern, channel, message]))
                    n += 1
        self.messages += n
        return n

    def notify_key(self, db, key, event):
        flags = self.server.config["notify-keyspace-events"]
        if not flags or not (self.channels or self.patterns):
            return
        cls = EVENT_CLASS.get(event)
        if cls is None:
            return
        if cls not in flags and not ("A" in flags and cls in ALL_CLASSES):
            return
        if "K" in flags:
            self.publish(b"__keyspace@%d__:" % db + key, event.encode())
        if "E" in flags:
            self.publish(b"__keyevent@%d__:" % db + event.encode(), key)
