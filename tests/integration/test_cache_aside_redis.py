"""cache_aside (golden/pattern_cache_aside) against real Redis.

The fetch code appends ``user_id`` to the ``fetches`` list it is given, so a test sees
whether it ran. Keys are ``profile_{user_id}``: every test uses user ids that start with
its own unique prefix and deletes those keys afterwards.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from kflow import AsyncLocalRuntime
from kflow.loader import load_file
from kflow.runtime import load_module

pytestmark = pytest.mark.services

REPO = Path(__file__).resolve().parents[2]
CASE = REPO / "golden" / "pattern_cache_aside"
TTL_SECONDS = 300


@pytest.fixture
async def keys(redis_client: Any) -> AsyncIterator[list[str]]:
    """Keys the test will create: deleted before (in case) and after the test."""
    used: list[str] = []
    yield used
    if used:
        await redis_client.delete(*used)


def cache_environ(redis_url: str) -> dict[str, str]:
    parts = urlsplit(redis_url)
    environ = {
        "KFLOW_CACHE_HOST": parts.hostname or "127.0.0.1",
        "KFLOW_CACHE_PORT": str(parts.port or 6379),
        "KFLOW_CACHE_DB": parts.path.lstrip("/") or "0",
    }
    if parts.password:
        environ["KFLOW_CACHE_PASSWORD"] = parts.password
    return environ


@pytest.fixture
def in_process(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """``await run(inputs)``: the workflow file through AsyncLocalRuntime, with the cache
    pointed at the test's Redis through the environment."""
    for var, value in cache_environ(redis_url).items():
        monkeypatch.setenv(var, value)
    workflow, _ = load_file(str(CASE / "workflow.py"))
    runtime = AsyncLocalRuntime()

    async def run(inputs: dict[str, Any]) -> dict[str, Any]:
        return await runtime.execute_workflow_async(workflow, inputs)

    return run


def profile(user_id: str, tier: str) -> dict[str, Any]:
    """What the fetch code computes."""
    return {"id": user_id, "name": f"user-{user_id}", "tier": tier}


async def test_miss_fetches_and_stores_with_the_ttl(
    in_process: Any, redis_client: Any, keys: list[str], unique_name: str
) -> None:
    user_id = f"{unique_name}_a"
    key = f"profile_{user_id}"
    keys.append(key)
    await redis_client.delete(key)
    fetches: list[str] = []

    envelope = await in_process({"user_id": user_id, "fetches": fetches, "tier": "gold"})

    assert envelope["status"] == "success", envelope["errors"]
    assert envelope["results"]["profile_cached"] == {"key": key, "hit": False, "value": None}
    assert fetches == [user_id]  # the fetch code ran, once
    assert envelope["results"]["profile_fetch"] == profile(user_id, "gold")
    assert envelope["results"]["profile_store"] == profile(user_id, "gold")
    assert json.loads(await redis_client.get(key)) == profile(user_id, "gold")
    ttl = await redis_client.ttl(key)
    assert 0 < ttl <= TTL_SECONDS


async def test_hit_skips_the_fetch_code_and_returns_the_cached_value(
    in_process: Any, redis_client: Any, keys: list[str], unique_name: str
) -> None:
    user_id = f"{unique_name}_b"
    key = f"profile_{user_id}"
    keys.append(key)
    await redis_client.delete(key)
    first_fetches: list[str] = []
    await in_process({"user_id": user_id, "fetches": first_fetches, "tier": "gold"})
    assert first_fetches == [user_id]

    # Another tier this time: a fetch would show it, the cached value does not.
    fetches: list[str] = []
    envelope = await in_process({"user_id": user_id, "fetches": fetches, "tier": "silver"})

    assert envelope["status"] == "success", envelope["errors"]
    assert fetches == []  # untouched: the fetch code did not run
    assert first_fetches == [user_id]
    cached = profile(user_id, "gold")
    assert envelope["results"]["profile_cached"] == {"key": key, "hit": True, "value": cached}
    assert envelope["results"]["profile_fetch"] == cached
    assert envelope["results"]["profile_store"] == cached
    assert json.loads(await redis_client.get(key)) == cached


async def test_a_hit_returns_any_json_value_as_stored_and_does_not_store_again(
    in_process: Any, redis_client: Any, keys: list[str], unique_name: str
) -> None:
    # Written by someone else (another process, another version): no TTL, nested JSON.
    user_id = f"{unique_name}_c"
    key = f"profile_{user_id}"
    keys.append(key)
    stored = {
        "id": user_id,
        "tags": ["x", 1, 2.5, True, None, {"deep": ["ü", "日本"]}],
        "empty": {},
        "big": 2**62,
    }
    await redis_client.set(key, json.dumps(stored))
    fetches: list[str] = []

    envelope = await in_process({"user_id": user_id, "fetches": fetches, "tier": "gold"})

    assert envelope["status"] == "success", envelope["errors"]
    assert fetches == []
    assert envelope["results"]["profile_store"] == stored
    # A hit leaves the entry alone: still no expiry, same text.
    assert await redis_client.ttl(key) == -1
    assert json.loads(await redis_client.get(key)) == stored


async def test_different_user_ids_use_different_keys(
    in_process: Any, redis_client: Any, keys: list[str], unique_name: str
) -> None:
    first_id, second_id = f"{unique_name}_d1", f"{unique_name}_d2"
    keys += [f"profile_{first_id}", f"profile_{second_id}"]
    await redis_client.delete(*keys)
    fetches: list[str] = []

    one = await in_process({"user_id": first_id, "fetches": fetches, "tier": "gold"})
    two = await in_process({"user_id": second_id, "fetches": fetches, "tier": "bronze"})

    assert one["results"]["profile_cached"]["key"] == f"profile_{first_id}"
    assert two["results"]["profile_cached"] == {
        "key": f"profile_{second_id}",
        "hit": False,
        "value": None,
    }
    assert fetches == [first_id, second_id]  # the second user was a miss too
    assert json.loads(await redis_client.get(f"profile_{first_id}")) == profile(first_id, "gold")
    assert json.loads(await redis_client.get(f"profile_{second_id}")) == profile(
        second_id, "bronze"
    )


async def test_redis_down_fails_the_check_and_skips_its_dependents(
    in_process: Any, free_port: int, monkeypatch: pytest.MonkeyPatch, unique_name: str
) -> None:
    monkeypatch.setenv("KFLOW_CACHE_HOST", "127.0.0.1")
    monkeypatch.setenv("KFLOW_CACHE_PORT", str(free_port))
    fetches: list[str] = []

    envelope = await in_process({"user_id": unique_name, "fetches": fetches, "tier": "gold"})

    assert envelope["status"] == "failed"
    assert list(envelope["errors"]) == ["profile_cached"]
    message = envelope["errors"]["profile_cached"]
    assert message.startswith("ResourceError: resource 'cache'"), message
    # Names the resource and where it points, then the driver's own reason.
    assert f"resource 'cache' (redis 127.0.0.1:{free_port}/" in message, message
    assert "could not connect" in message and "ConnectionError" in message
    assert envelope["skipped"] == ["profile_fetch", "profile_store"]
    assert envelope["results"] == {}
    assert fetches == []  # the fetch code never ran


async def test_shipped_golden_module_with_environ(
    redis_url: str, redis_client: Any, keys: list[str], unique_name: str
) -> None:
    # The golden file itself, with `environ=` in place of os.environ: miss, then hit.
    module = load_module((CASE / "expected.py").read_text(), "golden-pattern_cache_aside")
    environ = cache_environ(redis_url)
    user_id = f"{unique_name}_e"
    key = f"profile_{user_id}"
    keys.append(key)
    await redis_client.delete(key)

    fetches: list[str] = []
    miss = await module.run(
        {"user_id": user_id, "fetches": fetches, "tier": "gold"}, environ=environ
    )
    hit = await module.run(
        {"user_id": user_id, "fetches": fetches, "tier": "gold"}, environ=environ
    )

    assert miss["status"] == hit["status"] == "success"
    assert fetches == [user_id]
    assert miss["results"]["profile_store"] == hit["results"]["profile_store"]
    assert hit["results"]["profile_cached"]["hit"] is True
    assert 0 < await redis_client.ttl(key) <= TTL_SECONDS
