"""SLOWLOG: the most recent commands that took longer than slowlog-log-slower-than."""
import collections
import time


class SlowLog:
    def __init__(self):
        self.entries = collections.deque()   # newest first: (id, unix time, µs, args, addr, name)
        self.next_id = 0                     # id of the next entry

    def add(self, micros, args, client, max_len):
        shown = [a if len(a) <= 128 else a[:128] + b"... (%d more bytes)" % (len(a) - 128) for a in args[:32]]
        if len(args) > 32:
            shown[-1] = b"... (%d more arguments)" % (len(args) - 31)
        self.entries.appendleft((self.next_id, int(time.time()), micros, shown, client.addr.encode(), client.name))
        self.next_id += 1
        while len(self.entries) > max_len:
            self.entries.pop()

    def get(self, count=10):
        if count < 0:
            count = len(self.entries)
        return [[i, t, us, list(args), addr, name] for i, t, us, args, addr, name in list(self.entries)[:count]]

    def reset(self):
        self.entries.clear()
