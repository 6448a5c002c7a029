"""``[queues] pause_reasons``: the default, and a clear error naming the key."""

from __future__ import annotations

import pytest

from cti_bridge.app.config import ConfigError, parse_config


def test_the_default_reasons() -> None:
    reasons = parse_config({}, source="t").queues.pause_reasons
    assert reasons == ("break", "lunch", "training", "back office")
    assert parse_config({"queues": {"pause_reasons": ["x"]}}, source="t").queues.pause_reasons == (
        "x",
    )


@pytest.mark.parametrize("reasons", [[], ["a", "a"], [" a"], ["a\r\nb"], ["x" * 65], "lunch"])
def test_bad_reasons_are_refused_naming_the_key(reasons: object) -> None:
    with pytest.raises(ConfigError, match=r"cti\.toml: queues\.pause_reasons"):
        parse_config({"queues": {"pause_reasons": reasons}}, source="cti.toml")
