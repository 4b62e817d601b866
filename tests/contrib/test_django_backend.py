"""kvdb.contrib.django.KvdbCache against Django's documented cache API: the behaviours Django's own
cache test-suite (tests/cache/tests.py, BaseCacheTests) checks, run on a kvdb cache directory."""
import asyncio
import datetime
import pickle
import time
import warnings

import pytest

django = pytest.importorskip("django")
from django.conf import settings  # noqa: E402

if not settings.configured:
    settings.configure(
        CACHES={"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}},
        USE_TZ=True,
    )
    django.setup()

from django.core.cache import CacheKeyWarning  # noqa: E402
from django.core.cache.backends.base import BaseCache  # noqa: E402
from django.core.exceptions import ImproperlyConfigured  # noqa: E402

from kvdb.contrib.django import KvdbCache  # noqa: E402

SHORT = 0.3   # a timeout the expiry tests wait out (real time)
WAIT = 0.45   # how long they wait


def custom_key_func(key, key_prefix, version):
    """A KEY_FUNCTION as Django's tests define one."""
    return "CUSTOM-" + "-".join([key_prefix, str(version), key])


class Unpicklable:
    def __getstate__(self):
        raise pickle.PickleError("not picklable")


class Plain:
    """A picklable object value."""

    def __init__(self, value):
        self.value = value

    def __eq__(self, other):
        return isinstance(other, Plain) and other.value == self.value


@pytest.fixture
def make(tmp_path):
    """make(**params) -> a KvdbCache in a fresh directory; all closed at the end."""
    made = []

    def make(location=None, **params):
        params.setdefault("OPTIONS", {}).setdefault("shards", 2)
        backend = KvdbCache(location or str(tmp_path / f"cache{len(made)}"), params)
        made.append(backend)
        return backend

    yield make
    for backend in made:
        shut(backend)


def shut(backend):
    """Close a backend's shards for real (its close() keeps a persistent cache open)."""
    if backend._fanout is not None:
        backend._fanout.close()


@pytest.fixture
def cache(make):
    return make()


# -- basics ---------------------------------------------------------------------------------------

def test_it_is_a_django_cache_backend(cache):
    assert isinstance(cache, BaseCache)


def test_simple_get_set_and_default(cache):
    cache.set("key", "value")
    assert cache.get("key") == "value"
    assert cache.get("missing") is None
    assert cache.get("missing", "dflt") == "dflt"


def test_none_is_a_value_not_a_miss(cache):
    cache.set("none", None)
    assert cache.get("none", "dflt") is None
    assert cache.has_key("none")
    assert cache.get_many(["none"]) == {"none": None}


def test_add(cache):
    assert cache.add("addkey1", "value") is True
    assert cache.add("addkey1", "newvalue") is False
    assert cache.get("addkey1") == "value"


def test_delete_and_has_key_and_in(cache):
    cache.set("key1", "spam")
    cache.set("key2", "eggs")
    assert cache.delete("key1") is True
    assert cache.delete("key1") is False
    assert cache.get("key1") is None and cache.get("key2") == "eggs"
    assert cache.has_key("key2") and not cache.has_key("key1")
    assert "key2" in cache and "key1" not in cache


def test_incr_and_decr(cache):
    cache.set("answer", 41)
    assert cache.incr("answer") == 42 and cache.get("answer") == 42
    assert cache.incr("answer", 10) == 52
    assert cache.incr("answer", -10) == 42
    assert cache.decr("answer") == 41
    assert cache.decr("answer", 10) == 31
    assert cache.decr("answer", -10) == 41
    with pytest.raises(ValueError, match="not found"):
        cache.incr("does_not_exist")
    with pytest.raises(ValueError):
        cache.decr("does_not_exist")
    with pytest.raises(ValueError):
        cache.incr("does_not_exist", -1)
    assert not cache.has_key("does_not_exist")


def test_data_types(cache):
    stuff = {
        "string": "this is a string",
        "int": 42,
        "bigint": 2 ** 70,
        "float": 1.5,
        "bytes": b"\x00\xff" * 1000,
        "list": [1, 2, 3, 4],
        "tuple": (1, 2, 3, 4),
        "dict": {"A": 1, "B": 2},
        "function": custom_key_func,
        "class": Plain,
        "object": Plain("x"),
        "date": datetime.date(2026, 12, 6),
        "datetime": datetime.datetime(2026, 12, 6, 7, 55, tzinfo=datetime.timezone.utc),
        "bool": True,
        "unicode": "Iñtërnâtiônàlizætiøn ☃",
    }
    cache.set("stuff", stuff)
    assert cache.get("stuff") == stuff
    for name, value in stuff.items():
        cache.set(name, value)
        assert cache.get(name) == value and type(cache.get(name)) is type(value)


def test_unicode_keys_and_values(cache):
    values = {"ascii": "ascii_value", "unicode_ascii": "Iñtërnâtiônàlizætiøn1", "Iñtërnâtiônàlizætiøn": "x",
              "ascii2": {"x": 1}}
    for key, value in values.items():
        cache.set(key, value)
        assert cache.get(key) == value
    cache.set_many(values)
    assert cache.get_many(list(values)) == values
    cache.delete_many(list(values))
    assert cache.get_many(list(values)) == {}


def test_large_binary_value(cache):
    value = bytes(range(256)) * 4096  # 1 MiB
    cache.set("big", value)
    assert cache.get("big") == value


def test_unpicklable_value_raises_and_stores_nothing(cache):
    with pytest.raises(pickle.PickleError):
        cache.set("unpicklable", Unpicklable())
    assert not cache.has_key("unpicklable")


# -- many at once ---------------------------------------------------------------------------------

def test_get_many_set_many_delete_many(cache):
    assert cache.set_many({"a": 1, "b": 2, "c": 3}) == []
    assert cache.get_many(["a", "c", "d"]) == {"a": 1, "c": 3}
    assert cache.get_many(iter(["a", "b"])) == {"a": 1, "b": 2}
    cache.delete_many(["a", "b", "missing"])
    assert cache.get_many(["a", "b", "c"]) == {"c": 3}


def test_clear_removes_every_prefix_and_version(make, tmp_path):
    location = str(tmp_path / "shared")
    plain, prefixed = make(location), make(location, KEY_PREFIX="p")
    plain.set("k", 1)
    plain.set("k", 2, version=2)
    prefixed.set("k", 3)
    plain.clear()
    assert plain.get("k") is None and plain.get("k", version=2) is None and prefixed.get("k") is None


# -- timeouts -------------------------------------------------------------------------------------

def test_expiration_with_real_timeouts(cache):
    cache.set("expire1", "very quickly", SHORT)
    cache.set("expire2", "very quickly", SHORT)
    cache.set("expire3", "very quickly", SHORT)
    cache.set("forever", "stays", None)
    time.sleep(WAIT)
    assert cache.get("expire1") is None
    assert cache.add("expire2", "newvalue") is True
    assert cache.get("expire2") == "newvalue"
    assert not cache.has_key("expire3")
    assert cache.get("forever") == "stays"
    with pytest.raises(ValueError):
        cache.incr("expire1")


def test_touch_and_the_default_timeout(make):
    # Django reads TIMEOUT as a whole number of seconds, so the default-timeout part waits 1 s
    cache, forever = make(TIMEOUT=1), make(TIMEOUT=None)
    assert cache.default_timeout == 1 and forever.default_timeout is None
    cache.set("default", "value")              # the default TIMEOUT: 1 s
    forever.set("default", "value")            # TIMEOUT None: for ever
    cache.set("expire1", "value")
    assert cache.touch("expire1", None) is True  # now for ever
    cache.set("expire2", "value", None)
    assert cache.touch("expire2", SHORT) is True
    assert cache.touch("missing") is False
    cache.set("expire3", "value", None)
    assert cache.touch("expire3", 0) is True     # 0: expire now
    assert cache.get("expire3") is None
    time.sleep(WAIT)
    assert cache.get("expire2") is None
    assert cache.get("default") == "value"
    time.sleep(1.05 - WAIT)
    assert cache.get("default") is None
    assert forever.get("default") == "value"
    assert cache.get("expire1") == "value"


def test_zero_and_negative_timeouts_do_not_store(cache):
    cache.set("key1", "eggs", 0)
    assert cache.get("key1") is None
    cache.set("key1", "eggs")
    cache.set("key1", "spam", 0)             # overwriting with timeout 0 removes the old value
    assert cache.get("key1") is None
    cache.add("key2", "ham", 0)
    assert cache.get("key2") is None
    assert cache.set_many({"key3": "sausage", "key4": "lobster bisque"}, 0) == []
    assert cache.get_many(["key3", "key4"]) == {}
    cache.set("key5", "belgian fries", timeout=-1)
    assert cache.get("key5") is None


def test_long_and_float_timeouts(cache):
    cache.set("key1", "eggs", 60 * 60 * 24 * 30 + 1)  # past memcached's 30-day line
    assert cache.get("key1") == "eggs"
    assert cache.add("key2", "ham", 60 * 60 * 24 * 365) is True
    assert cache.get("key2") == "ham"
    cache.set("key3", "float", 1.5)
    assert cache.get("key3") == "float"


def test_get_or_set(cache):
    assert cache.get("projector") is None
    assert cache.get_or_set("projector", 42) == 42
    assert cache.get("projector") == 42
    assert cache.get_or_set("projector", 43) == 42
    assert cache.get_or_set("null", None) is None
    assert cache.has_key("null")  # None is stored, as Django's backends do
    assert cache.get_or_set("mykey", lambda: "computed") == "computed"
    assert cache.get_or_set("mykey", lambda: "other") == "computed"
    assert cache.get_or_set("brand_new_key", "v", version=2) == "v"
    assert cache.get("brand_new_key") is None and cache.get("brand_new_key", version=2) == "v"


# -- keys: versions, prefixes, key functions, warnings --------------------------------------------

def test_versioning_get_set_and_add(make, tmp_path):
    location = str(tmp_path / "versions")
    v1, v2 = make(location), make(location, VERSION=2)
    v1.set("answer1", 42)
    assert v1.get("answer1") == 42 and v1.get("answer1", version=1) == 42
    assert v1.get("answer1", version=2) is None and v2.get("answer1") is None
    assert v2.get("answer1", version=1) == 42
    v2.set("answer2", 42)
    assert v2.get("answer2") == 42 and v1.get("answer2") is None and v1.get("answer2", version=2) == 42
    assert v1.add("answer3", 37, version=2) is True
    assert v1.add("answer3", 38, version=2) is False
    assert v1.add("answer3", 39, version=1) is True
    assert v2.get("answer3") == 37 and v1.get("answer3") == 39
    assert v1.has_key("answer3", version=2) and not v1.has_key("answer1", version=2)
    v1.set("gone", 1, version=2)
    assert v1.delete("gone", version=2) and v1.get("gone", version=2) is None


def test_versioning_many_and_incr(cache):
    cache.set_many({"ford1": 37, "arthur1": 42}, version=2)
    assert cache.get_many(["ford1", "arthur1"]) == {}
    assert cache.get_many(["ford1", "arthur1"], version=2) == {"ford1": 37, "arthur1": 42}
    assert cache.incr("ford1", version=2) == 38
    assert cache.decr("arthur1", version=2) == 41
    with pytest.raises(ValueError):
        cache.incr("ford1")
    cache.delete_many(["ford1"], version=2)
    assert cache.get_many(["ford1", "arthur1"], version=2) == {"arthur1": 41}


def test_incr_and_decr_version(cache):
    cache.set("answer", 42, version=2)
    assert cache.incr_version("answer", version=2) == 3
    assert cache.get("answer", version=2) is None and cache.get("answer", version=3) == 42
    assert cache.decr_version("answer", version=3) == 2
    assert cache.get("answer", version=2) == 42
    cache.set("answer1", 1)
    assert cache.incr_version("answer1") == 2 and cache.get("answer1", version=2) == 1
    with pytest.raises(ValueError):
        cache.incr_version("does_not_exist")
    with pytest.raises(ValueError):
        cache.decr_version("does_not_exist")


def test_key_prefix_separates_caches_in_one_directory(make, tmp_path):
    location = str(tmp_path / "prefixed")
    a, b = make(location, KEY_PREFIX="a"), make(location, KEY_PREFIX="b")
    a.set("k", "from a")
    assert b.get("k") is None and a.get("k") == "from a"
    b.set("k", "from b")
    assert a.get("k") == "from a" and b.get("k") == "from b"
    assert a.make_key("k") == "a:1:k"


def test_custom_key_function(make, tmp_path):
    location = str(tmp_path / "custom")
    custom = make(location, KEY_FUNCTION=custom_key_func)
    dotted = make(location, KEY_FUNCTION="tests.contrib.test_django_backend.custom_key_func")
    plain = make(location)
    custom.set("answer1", 42)
    assert custom.get("answer1") == 42 and dotted.get("answer1") == 42 and plain.get("answer1") is None
    assert custom.make_key("k") == "CUSTOM--1-k"


def test_invalid_keys_warn_as_for_memcached(cache):
    for key in ["key with spaces", "key\nwith\ncontrol", "k" * 251]:
        with pytest.warns(CacheKeyWarning):
            cache.set(key, "value")
        with pytest.warns(CacheKeyWarning):
            assert cache.get(key) == "value"  # stored anyway: only memcached refuses such keys
        with pytest.warns(CacheKeyWarning):
            cache.delete(key)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cache.set("k" * 200, "fine")


# -- size, close, settings ------------------------------------------------------------------------

def test_size_limit_culls_the_oldest(make):
    cache = make(OPTIONS={"size_limit": 200_000, "shards": 1, "cull_limit": 10})
    value = b"x" * 10_000
    for i in range(100):
        cache.set(f"k{i}", value)
    cache.cull()
    assert cache.volume() <= 200_000 * 2
    kept = [i for i in range(100) if cache.has_key(f"k{i}")]
    assert 0 < len(kept) < 100
    assert kept[-1] == 99 and 0 not in kept  # least-recently-stored went first


def test_close_keeps_a_persistent_cache_open(cache):
    cache.set("k", 1)
    fanout = cache._fanout
    cache.close()
    assert cache._fanout is fanout
    assert cache.get("k") == 1


def test_close_then_use_again_when_not_persistent(make):
    cache = make(OPTIONS={"persistent": False})
    cache.set("k", 1)
    cache.close()
    cache.close()
    assert cache._fanout is None
    assert cache.get("k") == 1
    cache.set("k", 2)
    assert cache.get("k") == 2


def test_values_survive_a_new_backend_on_the_directory(make, tmp_path):
    location = str(tmp_path / "reopen")
    first = make(location)
    first.set("k", {"x": 1})
    first.close()
    assert make(location).get("k") == {"x": 1}


def test_through_django_caches_setting(tmp_path):
    from django.core.cache import caches
    from django.test import override_settings
    backend = {"BACKEND": "kvdb.contrib.django.KvdbCache", "LOCATION": str(tmp_path / "settings"),
               "TIMEOUT": 300, "OPTIONS": {"size_limit": 2 ** 20, "shards": 2}}
    with override_settings(CACHES={"default": backend}):
        cache = caches["default"]
        try:
            assert isinstance(cache, KvdbCache)
            cache.set("k", "v")
            assert cache.get("k") == "v"
            assert cache.default_timeout == 300
            assert cache._fanout.size_limit == 2 ** 19
        finally:
            shut(cache)


def test_async_api(cache):
    async def main():
        await cache.aset("k", 1)
        assert await cache.aget("k") == 1
        assert await cache.aadd("k", 2) is False
        assert await cache.aincr("k") == 2
        assert await cache.ahas_key("k")
        await cache.adelete("k")
        assert await cache.aget("k") is None

    asyncio.run(main())


def test_bad_configuration_is_refused(tmp_path):
    with pytest.raises(ImproperlyConfigured, match="LOCATION"):
        KvdbCache("", {})
    with pytest.raises(ImproperlyConfigured, match="size_limit"):
        KvdbCache(str(tmp_path / "a"), {"OPTIONS": {"MAX_ENTRIES": 10}})
    with pytest.raises(ValueError, match="size_limit"):
        KvdbCache(str(tmp_path / "b"), {"OPTIONS": {"size_limit": 0}})
    with pytest.raises(ValueError, match="shards"):
        KvdbCache(str(tmp_path / "c"), {"OPTIONS": {"shards": 0}})
    with pytest.raises(ImproperlyConfigured, match="persistent"):
        KvdbCache(str(tmp_path / "d"), {"OPTIONS": {"persistent": "yes"}})


def test_diskcache_extras(cache):
    cache.set("t", 1, tag="group")
    cache.set("u", 2, tag="group")
    cache.set("v", 3)
    assert cache.pop("v") == 3 and cache.pop("v", "gone") == "gone"
    assert cache.evict("group") == 2
    assert cache.get("t") is None
    deque = cache.deque("jobs")
    deque.append(1)
    assert cache.deque("jobs").popleft() == 1
    index = cache.index("users")
    index["ada"] = 36
    assert cache.index("users")["ada"] == 36
