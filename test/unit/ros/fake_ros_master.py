"""An in-memory ROS master (Master XML-RPC API semantics of rosmaster 1.15) and fake nodes, for the sync tests.

Like rosmaster it keeps one API per caller id and "shuts down" (records) the old API when a caller id registers
with a new one, keeps one provider per service, and never checks that nodes are alive. Its publisherUpdates reach
the fake nodes of the same `Network`, which "connect" like rospy subscribers do (only to publishers they are not
connected to, never dropping one on an update).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class FakeMaster:
    def __init__(self, uri: str, pid: int = 100) -> None:
        self.uri = uri
        self.pid = pid
        self.down = False
        self.refused_calls = 0  # calls attempted while down
        self.refuse: set = set()  # methods answered with a ROS API error (code -1)
        self.calls: list[tuple[str, tuple]] = []
        self.shutdowns: list[tuple[str, str]] = []  # (bumped api, caller id)
        self.publisher_updates: list[tuple[str, str, list[str]]] = []  # (subscriber api, topic, publisher apis)
        self.deliver: Callable[[str, str, list[str]], None] | None = None  # set by Network.add
        self._reset()

    def _reset(self) -> None:
        self.nodes: dict[str, str] = {}
        self.pubs: dict[str, list[tuple[str, str]]] = {}
        self.subs: dict[str, list[tuple[str, str]]] = {}
        self.srvs: dict[str, tuple[str, str, str]] = {}  # service -> (caller id, api, rosrpc uri)
        self.types: dict[str, str] = {}

    def restart(self) -> None:
        """A new master process: everything forgotten, new pid."""
        self._reset()
        self.pid += 1
        self.down = False

    def __getattr__(self, method: str) -> Any:
        impl = getattr(type(self), "_" + method, None)
        if impl is None:
            raise AttributeError(method)

        def call(*args: Any) -> Any:
            if self.down:
                self.refused_calls += 1
                raise ConnectionRefusedError(111, "Connection refused")
            self.calls.append((method, args))
            if method in self.refuse:
                return [-1, f"{method} refused by test", 0]
            return impl(self, *args)

        return call

    def count(self, method: str) -> int:
        return sum(1 for m, _ in self.calls if m == method)

    # ---- node bookkeeping like rosmaster's RegistrationManager ----
    def _node(self, caller_id: str, api: str) -> None:
        old = self.nodes.get(caller_id)
        if old is not None and old != api:
            self.shutdowns.append((old, caller_id))
            for table in (self.pubs, self.subs):
                for topic in list(table):
                    table[topic] = [(c, a) for c, a in table[topic] if c != caller_id]
                    if not table[topic]:
                        del table[topic]
            for srv in [s for s, v in self.srvs.items() if v[0] == caller_id]:
                del self.srvs[srv]
        self.nodes[caller_id] = api

    def _drop_node_if_empty(self, caller_id: str) -> None:
        used = any(c == caller_id for t in (self.pubs, self.subs) for regs in t.values() for c, _ in regs)
        used = used or any(v[0] == caller_id for v in self.srvs.values())
        if not used:
            self.nodes.pop(caller_id, None)

    def _notify(self, topic: str) -> None:
        pub_apis = [a for _, a in self.pubs.get(topic, [])]
        for _, sub_api in self.subs.get(topic, []):
            self.publisher_updates.append((sub_api, topic, pub_apis))
            if self.deliver is not None:
                self.deliver(sub_api, topic, pub_apis)

    # ---- Master API ----
    def _getPid(self, caller_id: str) -> list:
        return [1, "", self.pid]

    def _getSystemState(self, caller_id: str) -> list:
        def rows(table: dict[str, list[tuple[str, str]]]) -> list:
            return [[t, [c for c, _ in regs]] for t, regs in table.items()]

        return [1, "state", [rows(self.pubs), rows(self.subs), [[s, [v[0]]] for s, v in self.srvs.items()]]]

    def _getTopicTypes(self, caller_id: str) -> list:
        return [1, "types", [[t, ty] for t, ty in self.types.items()]]

    def _lookupNode(self, caller_id: str, node: str) -> list:
        if node in self.nodes:
            return [1, "node api", self.nodes[node]]
        return [-1, f"unknown node [{node}]", ""]

    def _lookupService(self, caller_id: str, service: str) -> list:
        if service in self.srvs:
            return [1, "rosrpc URI", self.srvs[service][2]]
        return [-1, "no provider", ""]

    def _registerPublisher(self, caller_id: str, topic: str, topic_type: str, api: str) -> list:
        self._node(caller_id, api)
        regs = self.pubs.setdefault(topic, [])
        if (caller_id, api) not in regs:
            regs.append((caller_id, api))
        if topic_type != "*" or topic not in self.types:
            self.types[topic] = topic_type
        self._notify(topic)
        return [1, "registered", [a for _, a in self.subs.get(topic, [])]]

    def _unregisterPublisher(self, caller_id: str, topic: str, api: str) -> list:
        regs = self.pubs.get(topic, [])
        if (caller_id, api) not in regs:
            return [1, "not a publisher", 0]
        regs.remove((caller_id, api))
        if not regs:
            del self.pubs[topic]
        self._drop_node_if_empty(caller_id)
        self._notify(topic)
        return [1, "unregistered", 1]

    def _registerSubscriber(self, caller_id: str, topic: str, topic_type: str, api: str) -> list:
        self._node(caller_id, api)
        regs = self.subs.setdefault(topic, [])
        if (caller_id, api) not in regs:
            regs.append((caller_id, api))
        if topic not in self.types and topic_type != "*":
            self.types[topic] = topic_type
        return [1, "subscribed", [a for _, a in self.pubs.get(topic, [])]]

    def _unregisterSubscriber(self, caller_id: str, topic: str, api: str) -> list:
        regs = self.subs.get(topic, [])
        if (caller_id, api) not in regs:
            return [1, "not a subscriber", 0]
        regs.remove((caller_id, api))
        if not regs:
            del self.subs[topic]
        self._drop_node_if_empty(caller_id)
        return [1, "unsubscribed", 1]

    def _registerService(self, caller_id: str, service: str, service_api: str, api: str) -> list:
        self._node(caller_id, api)
        self.srvs[service] = (caller_id, api, service_api)
        return [1, "registered", 1]

    def _unregisterService(self, caller_id: str, service: str, service_api: str) -> list:
        current = self.srvs.get(service)
        if current is None or (current[0], current[2]) != (caller_id, service_api):
            return [1, "not the current provider", 0]
        del self.srvs[service]
        self._drop_node_if_empty(caller_id)
        return [1, "unregistered", 1]


class FakeNode:
    """A node's slave API as far as the bridge uses it: liveness, its own publications/subscriptions, its inbound
    connections (getBusInfo) and publisherUpdate (connects to the live publishers of the topic it is not connected
    to, like rospy; `connects = False` models a subscriber that cannot connect, e.g. a type mismatch)."""

    def __init__(
        self, uri: str, pubs: list[tuple[str, str]] | None = None, subs: list[tuple[str, str]] | None = None
    ) -> None:
        self.uri = uri
        self.pubs = list(pubs or [])
        self.subs = list(subs or [])
        self.alive = True
        self.connects = True
        self.net: Network | None = None
        self.connected: dict[str, set[str]] = {}  # topic -> publisher URIs (as given)
        self.updates: list[tuple[str, str, list[str]]] = []  # (caller id, topic, publisher URIs) received
        self.calls: dict[str, int] = {}
        self.on_call: Callable[[str], None] | None = None  # e.g. advance a test clock (a slow node)

    def _check(self, method: str) -> None:
        self.calls[method] = self.calls.get(method, 0) + 1
        if self.on_call is not None:
            self.on_call(method)
        if not self.alive:
            raise ConnectionRefusedError(111, "Connection refused")

    def drop(self, topic: str, pub_uri: str) -> None:
        """The TCPROS connection to `pub_uri` died (its publisher was torn down)."""
        self.connected.get(topic, set()).discard(pub_uri)

    def getPublications(self, caller_id: str) -> list:
        self._check("getPublications")
        return [1, "publications", [list(p) for p in self.pubs]]

    def getSubscriptions(self, caller_id: str) -> list:
        self._check("getSubscriptions")
        return [1, "subscriptions", [list(s) for s in self.subs]]

    def getBusInfo(self, caller_id: str) -> list:
        self._check("getBusInfo")
        info = [
            [i, uri, "i", "TCPROS", topic, True, "fake"]
            for i, (topic, uri) in enumerate((t, u) for t, uris in sorted(self.connected.items()) for u in sorted(uris))
        ]
        return [1, "bus info", info]

    def publisherUpdate(self, caller_id: str, topic: str, publishers: list[str]) -> list:
        self._check("publisherUpdate")
        self.updates.append((caller_id, topic, list(publishers)))
        if self.connects and any(t == topic for t, _ in self.subs):
            for uri in publishers:
                pub = self.net.objects.get(uri.rstrip("/")) if self.net is not None else None
                if isinstance(pub, FakeNode) and pub.alive and any(t == topic for t, _ in pub.pubs):
                    self.connected.setdefault(topic, set()).add(uri)
        return [1, "", 0]


class Network:
    """proxy_factory for MasterSync: URI -> fake master or node; unknown URIs refuse connections."""

    def __init__(self) -> None:
        self.objects: dict[str, Any] = {}

    def add(self, obj: Any) -> Any:
        self.objects[obj.uri.rstrip("/")] = obj
        if isinstance(obj, FakeMaster):
            obj.deliver = self._deliver
        elif isinstance(obj, FakeNode):
            obj.net = self
        return obj

    def _deliver(self, sub_api: str, topic: str, pub_apis: list[str]) -> None:
        """A master's publisherUpdate to a subscriber (a dead or unknown node misses it, as with rosmaster)."""
        node = self.objects.get(sub_api.rstrip("/"))
        if isinstance(node, FakeNode) and node.alive:
            node.publisherUpdate("/master", topic, pub_apis)

    def __call__(self, uri: str) -> Any:
        return self.objects.get(uri.rstrip("/"), _Refusing())


class _Refusing:
    def __getattr__(self, method: str) -> Any:
        def call(*args: Any) -> Any:
            raise ConnectionRefusedError(111, "Connection refused")

        return call
