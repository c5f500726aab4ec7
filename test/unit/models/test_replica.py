"""replica loading: seeded replicas match, other weights/graphs are refused, the global RNG is left alone."""

from __future__ import annotations

import torch

from intradp_ros.core.session import ModelConfig, check_peer
from intradp_ros.models.replica import load_replica

TINY = {"name": "torchvision:resnet18", "input_size": [64, 64]}


def test_same_seed_same_weights_other_seed_refused() -> None:
    a = load_replica(ModelConfig.from_dict(TINY))
    b = load_replica(ModelConfig.from_dict(TINY))
    c = load_replica(ModelConfig.from_dict(dict(TINY, seed=1)))
    assert a.weights_fingerprint == b.weights_fingerprint
    assert a.graph_fingerprint == b.graph_fingerprint
    assert check_peer(a, b.model_id, b.weights_fingerprint, b.graph_fingerprint) is None
    assert "weights fingerprint" in check_peer(a, c.model_id, c.weights_fingerprint, c.graph_fingerprint)
    assert "not served" in check_peer(a, "sconet", a.weights_fingerprint, a.graph_fingerprint)
    assert "graph fingerprint" in check_peer(a, a.model_id, a.weights_fingerprint, "0" * 16)


def test_loading_does_not_disturb_the_global_rng() -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    load_replica(ModelConfig.from_dict(TINY))
    assert torch.equal(torch.rand(3), expected)


class _FakeReplica:
    """What VariantCache uses of a Replica: its model (for the memory), id and fingerprints."""

    def __init__(self, model_id: str, floats: int) -> None:
        self.model = torch.nn.Linear(floats, 1, bias=False)  # floats * 4 bytes
        self.model_id = model_id
        self.weights_fingerprint, self.graph_fingerprint = f"w{model_id}", f"g{model_id}"


def test_variant_cache_evicts_the_least_recently_used_beyond_its_budget() -> None:
    from intradp_ros.models.replica import VariantCache, replica_bytes

    a, b, c = (_FakeReplica(k, 1000) for k in "abc")
    assert replica_bytes(a) == 4000  # type: ignore[arg-type]
    cache = VariantCache(budget_bytes=9000, max_known=2)
    assert cache.put(a) == [] and cache.put(b) == []  # type: ignore[arg-type]
    assert cache.get("a") is a  # a is now the most recently used
    assert cache.put(c) == ["b"] and cache.ids() == ["a", "c"] and cache.evicted == 1  # type: ignore[arg-type]
    assert cache.bytes_used == 8000 and cache.get("b") is None
    assert cache.known_fingerprints("c") == ("wc", "gc")
    assert cache.known_fingerprints("b") == ("wb", "gb")  # evicted, still known
    assert cache.known_fingerprints("a") is None  # max_known 2: the oldest built is forgotten
    huge = _FakeReplica("h", 10_000)
    assert sorted(cache.put(huge)) == ["a", "c"] and cache.ids() == ["h"]  # type: ignore[arg-type]  # newest kept
