"""Pub/sub: channel and pattern subscriptions, PUBLISH, and keyspace notifications
(notify-keyspace-events), delivered as RESP3 pushes or RESP2 arrays."""
from kvdb.server.protocol.resp import Push

from .glob import glob_match

# Keyspace event -> its notify-keyspace-events class letter.
EVENT_CLASS = {
    "del": "g", "expire": "g", "rename_from": "g", "rename_to": "g", "persist": "g", "copy_to": "g",
    "move_from": "g", "move_to": "g",
    "set": "$", "setrange": "$", "incrby": "$", "incrbyfloat": "$", "append": "$",
    "hset": "h", "hdel": "h", "hincrby": "h", "hincrbyfloat": "h",
    "expired": "x", "new": "n",
    "setbit": "$", "pfadd": "$",
    # lists
    **{e: "l" for e in ("lpush", "rpush", "lpop", "rpop", "linsert", "lset", "lrem", "ltrim", "lmove")},
    # sets
    **{e: "s" for e in ("sadd", "srem", "spop", "smove", "sinterstore", "sunionstore", "sdiffstore")},
    # sorted sets
    **{e: "z" for e in ("zadd", "zincr", "zrem", "zremrangebyrank", "zremrangebyscore", "zremrangebylex",
                        "zpopmin", "zpopmax", "zunionstore", "zinterstore", "zdiffstore", "zrangestore",
                        "geosearchstore", "georadiusstore")},
    # streams
    **{e: "t" for e in ("xadd", "xdel", "xtrim", "xsetid", "xgroup-create", "xgroup-setid", "xgroup-destroy",
                        "xgroup-createconsumer", "xgroup-delconsumer", "xclaim", "xautoclaim")},
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

    @staticmethod
    def _join(table, mine, c, name):
        """Adds c under name in table (channels or patterns) and in its own set mine."""
        if name in mine:
            return False
        mine.add(name)
        table.setdefault(name, set()).add(c)
        return True

    @staticmethod
    def _leave(table, mine, c, name):
        if name not in mine:
            return False
        mine.discard(name)
        subs = table.get(name)
        if subs is not None:
            subs.discard(c)
            if not subs:
                del table[name]
        return True

    def subscribe(self, c, channel):
        return self._join(self.channels, c.channels, c, channel)

    def unsubscribe(self, c, channel):
        return self._leave(self.channels, c.channels, c, channel)

    def psubscribe(self, c, pattern):
        return self._join(self.patterns, c.patterns, c, pattern)

    def punsubscribe(self, c, pattern):
        return self._leave(self.patterns, c.patterns, c, pattern)

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
