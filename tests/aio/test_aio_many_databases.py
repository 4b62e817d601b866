"""Several kvdb.aio databases in one process, each with its worker thread, opened, used and
closed at the same time. Runs in a child process: a crash of the engine must fail this test,
not end the test run."""
import subprocess
import sys
import textwrap

import pytest

from tests.helpers import child_env

CHILD = textwrap.dedent("""
    import asyncio, sys
    import kvdb.aio

    async def cycle(path, rounds):
        for i in range(rounds):
            async with kvdb.aio.open(path, engine=sys.argv[2], sync="off") as db:
                await db.put(b"k%d" % i, b"v")
                assert await db.count() == i + 1

    async def main():
        await asyncio.gather(*(cycle(f"{sys.argv[1]}/db{j}", 60) for j in range(3)))
    asyncio.run(main())
    print("ok")
""")


def run_child(tmp_path, engine):
    return subprocess.run([sys.executable, "-c", CHILD, str(tmp_path), engine], env=child_env(),
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("engine", ["btree", "lsm"])
def test_databases_open_and_close_side_by_side(tmp_path, engine):
    # B+Tree opens once overran the shared-memory page this way (fixed in 35d51ae)
    done = run_child(tmp_path, engine)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-3000:]
