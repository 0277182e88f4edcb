"""`retry_with_backoff`: run the code, retrying on `retry_on` errors with exponential
backoff; output the code's `result`, attempts in the envelope's `attempts`.

The node is a code node whose retry policy (`NodeOptions.retry`, the one RetryPolicy
type) the pattern sets: `max_retries` attempts in all, waits of `initial_backoff *
backoff_factor ** (n - 1)` capped at `max_backoff`. The guide calls it "exponential
backoff with jitter", so jitter is on by default here (and written in the generated
call); `jitter=False` gives the exact waits.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from kflow.errors import error
from kflow.ir import Node
from kflow.kinds._authoring import checked_call, code_block, node_options, with_retry
from kflow.kinds._base import Kind
from kflow.locate import caller_site
from kflow.values import BadValue
from kflow_runtime.patterns.retry import RetryPolicy, RetryPolicyError

if TYPE_CHECKING:
    from kflow.analyze import NodeAnalysis
    from kflow.builder import AsyncWorkflowBuilder
    from kflow.code_analysis import CodeAnalysis, StaticKeys
    from kflow.codegen import ModuleBuilder
    from kflow.pieces import Emitted


class RetryWithBackoffKind(Kind):
    name = "retry_with_backoff"
    label = "retry with backoff"

    def check_node(self, node: Node) -> None:
        super().check_node(node)
        if node.options.retry is None:
            raise BadValue("a retry_with_backoff node needs options.retry")

    def output_keys(self, node: Node, code: CodeAnalysis | None) -> StaticKeys | None:
        return code.static_keys if code is not None else None

    def emit(self, m: ModuleBuilder, a: NodeAnalysis) -> Emitted:
        return m.code_node(a)


@checked_call("KF016")
def retry_with_backoff(
    builder: AsyncWorkflowBuilder, node_id: str, code: str, *,
    max_retries: int = 3, initial_backoff: float = 1.0, backoff_factor: float = 2.0,
    max_backoff: float = 60.0, retry_on: Sequence[str | type[BaseException]] | None = None,
    jitter: bool = True, timeout: float | None = 30, error_handler: Any = None,
    required_resources: Sequence[str] | None = None, description: str | None = None,
) -> str:
    """Run `code`, retrying (up to `max_retries` attempts in all) on `retry_on`
    exceptions with exponential backoff (and jitter, unless `jitter=False`); attempts go
    to the envelope."""
    site = caller_site()
    location = site.location
    if retry_on is not None and isinstance(retry_on, str | type):
        retry_on = [retry_on]
    try:
        policy = RetryPolicy(
            max_attempts=max_retries, initial_delay=initial_backoff,
            backoff_factor=backoff_factor, max_delay=max_backoff,
            retry_exceptions=tuple(retry_on or ("Exception",)), jitter=jitter,
        )
    except RetryPolicyError as exc:
        # The policy names its own fields; say it in the pattern's words.
        raise error("KF016", _ours(exc.message), location,
                    _ours(exc.hint) if exc.hint else None) from None
    options = with_retry(node_options(site, timeout=timeout, error_handler=error_handler,
                                      required_resources=required_resources,
                                      description=description), policy)
    block = code_block(code, site, site.string_at(2, "code"))
    return builder.add_node(builder.node(node_id, "retry_with_backoff", site, code=block,
                                         options=options))


def _ours(text: str) -> str:
    """The policy's message, in the pattern's own words."""
    for policy, pattern in (("max_attempts", "max_retries"), ("initial_delay", "initial_backoff"),
                            ("max_delay", "max_backoff"), ("retry_exceptions", "retry_on")):
        text = text.replace(policy, pattern)
    return text


KINDS = (RetryWithBackoffKind(),)
PATTERNS = {"retry_with_backoff": retry_with_backoff}
