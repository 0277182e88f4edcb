"""cache_key, and cache_get / cache_set against the real Redis of the test setup.

The `redis_client`, `redis_url` and `unique_name` fixtures come from tests/services.py: an
unreachable Redis skips these tests, or fails them under KFLOW_REQUIRE_SERVICES=1.
"""

from __future__ import annotations

import datetime
import decimal

import pytest

from kflow_runtime.patterns import CacheKeyError, cache_get, cache_key, cache_set


def test_cache_key_formats_the_template_with_the_values():
    assert cache_key("service_data_{item_id}", {"item_id": 42}) == "service_data_42"
    assert cache_key("u:{user[id]}:{page}", {"user": {"id": 7}, "page": 2}) == "u:7:2"
    assert cache_key("static", {}) == "static"


def test_missing_field_names_itself_and_what_is_available():
    with pytest.raises(CacheKeyError) as caught:
        cache_key("service_data_{item_id}", {"user_id": 1, "page": 2})

    error = caught.value
    assert isinstance(error, KeyError)
    assert error.field == "item_id"
    assert str(error) == (
        "cache key template 'service_data_{item_id}' needs 'item_id'; available: page, user_id"
    )


def test_positional_fields_are_refused():
    with pytest.raises(ValueError, match="positional fields"):
        cache_key("data_{}", {"x": 1})


@pytest.fixture
async def keys(redis_client, unique_name):
    """Makes keys under this test's own prefix and deletes them afterwards."""
    made: list[str] = []

    def key(name: str) -> str:
        made.append(f"{unique_name}:{name}")
        return made[-1]

    yield key
    if made:
        await redis_client.delete(*made)


@pytest.mark.services
async def test_set_then_get_round_trips_json_with_a_ttl(redis_client, keys):
    key = keys("profile")
    value = {"id": 7, "tags": ["a", "b"], "score": 1.5, "none": None}

    await cache_set(redis_client, key, value, 1800)

    assert await cache_get(redis_client, key) == (True, value)
    ttl_ms = await redis_client.pttl(key)
    assert 1_700_000 < ttl_ms <= 1_800_000


@pytest.mark.services
async def test_fractional_ttl_is_kept_in_milliseconds(redis_client, keys):
    key = keys("short")
    await cache_set(redis_client, key, "x", 1.5)
    assert 1_000 < await redis_client.pttl(key) <= 1_500


@pytest.mark.services
async def test_no_ttl_means_no_expiry(redis_client, keys):
    key = keys("forever")
    await cache_set(redis_client, key, [1, 2], None)
    assert await redis_client.pttl(key) == -1
    assert await cache_get(redis_client, key) == (True, [1, 2])


@pytest.mark.services
async def test_miss_and_a_cached_none_are_told_apart(redis_client, keys):
    assert await cache_get(redis_client, keys("absent")) == (False, None)
    key = keys("null")
    await cache_set(redis_client, key, None, 60)
    assert await cache_get(redis_client, key) == (True, None)


@pytest.mark.services
async def test_datetimes_and_decimals_are_stored_as_strings(redis_client, keys):
    key = keys("typed")
    when = datetime.datetime(2024, 5, 1, 12, 30)
    await cache_set(redis_client, key, {"at": when, "price": decimal.Decimal("9.99")}, 60)
    assert await cache_get(redis_client, key) == (
        True,
        {"at": "2024-05-01 12:30:00", "price": "9.99"},
    )


@pytest.mark.services
async def test_a_client_returning_bytes_works_too(redis_url, keys):
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(redis_url)  # decode_responses=False: bytes back
    try:
        key = keys("bytes")
        await cache_set(client, key, {"ü": "ß"}, 60)
        assert await cache_get(client, key) == (True, {"ü": "ß"})
    finally:
        await client.aclose()


async def test_a_non_positive_ttl_is_refused_before_touching_the_cache():
    class NoCache:
        async def set(self, *args, **kwargs):
            raise AssertionError("must not be called")

    with pytest.raises(ValueError):
        await cache_set(NoCache(), "k", 1, 0)


async def test_set_returns_the_value_as_a_hit_will_read_it(redis_client, keys):
    import datetime

    key = keys("typed")
    stored = await cache_set(redis_client, key, {"pair": (1, 2), "at": datetime.date(2024, 1, 2)}, 60)
    hit, value = await cache_get(redis_client, key)
    assert hit and stored == value == {"pair": [1, 2], "at": "2024-01-02"}
