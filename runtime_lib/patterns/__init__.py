"""The primitives that generated modules call for kflow's patterns (DESIGN.md section 5).

Importing this package is cheap: each module imports only the standard library it needs at
once, and loads thread or process pools, multiprocessing and the like when first used.
"""

from ._errors import PatternError
from .batch import batch_process
from .cache import CacheKeyError, cache_get, cache_key, cache_set
from .circuit_breaker import CircuitBreaker, CircuitOpenError
from .executors import (
    AsyncExecutor,
    Executor,
    ProcessExecutor,
    ThreadExecutor,
    get_executor,
    register_executor,
    run_chunk_sync,
)
from .parallel_fetch import ParallelFetchError, parallel_fetch
from .parallel_map import ParallelMapError, parallel_map
from .rate_limit import RateLimiter
from .retry import RetryPolicy, retry_call
from .shared import SharedCircuitBreaker, SharedRateLimiter

__all__ = [
    # errors
    "PatternError",
    # batch
    "batch_process",
    # cache
    "CacheKeyError",
    "cache_get",
    "cache_key",
    "cache_set",
    # circuit_breaker
    "CircuitBreaker",
    "CircuitOpenError",
    # executors
    "AsyncExecutor",
    "Executor",
    "ProcessExecutor",
    "ThreadExecutor",
    "get_executor",
    "register_executor",
    "run_chunk_sync",
    # parallel_fetch
    "ParallelFetchError",
    "parallel_fetch",
    # parallel_map
    "ParallelMapError",
    "parallel_map",
    # rate_limit
    "RateLimiter",
    # retry
    "RetryPolicy",
    "retry_call",
    # shared
    "SharedCircuitBreaker",
    "SharedRateLimiter",
]
