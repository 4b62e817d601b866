"""Counters INFO reports: connections, commands (per command, with time spent),
network bytes, keyspace hits and misses, and a sampled ops/s."""
import time


class CommandStats:
    __slots__ = ("calls", "usec", "failed")

    def __init__(self):
        self.calls = 0      # times run
        self.usec = 0       # total µs spent in the handler
        self.failed = 0     # calls that replied with an error


class Stats:
    def __init__(self):
        self.reset()

    def reset(self):
        self.connections_received = 0   # connections accepted (incl. rejected)
        self.rejected_connections = 0   # refused by maxclients
        self.commands_processed = 0     # commands run
        self.net_input_bytes = 0        # bytes read from clients
        self.net_output_bytes = 0       # bytes written to clients
        self.keyspace_hits = 0          # reads that found their key
        self.keyspace_misses = 0        # reads that did not
        self.per_command = {}           # fullname -> CommandStats
        self._samples = []              # [(monotonic time, commands_processed)] for ops/s

    def count(self, name, usec, calls=1):
        s = self.per_command.get(name)
        if s is None:
            s = self.per_command[name] = CommandStats()
        s.calls += calls
        s.usec += usec

    def hit(self, found):
        if found:
            self.keyspace_hits += 1
        else:
            self.keyspace_misses += 1

    def sample(self):
        self._samples.append((time.monotonic(), self.commands_processed))
        if len(self._samples) > 16:
            del self._samples[0]

    def ops_per_sec(self):
        if len(self._samples) < 2:
            return 0
        (t0, n0), (t1, n1) = self._samples[0], self._samples[-1]
        return int((n1 - n0) / (t1 - t0)) if t1 > t0 else 0
