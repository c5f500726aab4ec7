"""Registration sync between two ROS masters through the Master XML-RPC API (no rospy, no payload relay).

Robot and server each run a roscore. For every publisher and service of a *real* node on one master whose name
matches the configured globs, `MasterSync` registers a *mirror* on the other master: same topic / service, same
type, the original node's XML-RPC URI (and rosrpc URI for services), under the caller id
``/intradp_bridge_<hash>/<original node>``. A subscriber on the other master is then told about the remote
publisher by its own master (publisherUpdate) and connects peer to peer over TCPROS; a service client looks
the service up locally and connects straight to the remote rosrpc URI. The bridge never carries data.

Why the pieces look as they do:
- Caller ids are unique per (source master, destination master) pair (the hash) and per original node, because a
  master that sees a known caller id with a new URI shuts the old node down.
- Registrations whose caller id starts with ``/intradp_bridge_`` are never mirrored again (no loops, also with
  several bridges); the set of mirrors present on a master is read back from that master's getSystemState,
  so a restarted bridge adopts (or removes) what an earlier instance left, and a restarted master is refilled.
- Subscribers are NOT mirrored: a master sends its subscribers the complete publisher list of a topic, so a
  remote subscriber registered with its real URI would be told to forget the publishers of its own side.
- After a master restart its nodes are not registered any more (rospy does not re-register). With
  ``restore=True`` the sync re-registers, under their own caller ids, the nodes it last saw on that master
  with registrations matching the globs, if they still answer: publications and subscriptions are asked from
  the node itself (getPublications / getSubscriptions), services come from the last seen state.
- A node that tears a publisher down and advertises it again at the same node URI faster than one poll leaves
  both masters' states unchanged, but the remote subscribers' TCPROS connections died with the old publisher and
  no master tells them about the new one. `ConnectionWatch` asks the remote subscribers of mirrored topics
  (slave API getBusInfo) whether they are connected to each mirrored publisher, and sends a subscriber that has
  stayed unconnected for a grace period, to a publisher that answers and still publishes the topic, the
  publisherUpdate its master would have sent (bounded calls and time per poll, backoff per node and per gap).
- Every master call goes through `MasterLink.call_as`, which turns transport failures into `MasterUnreachable`
  (logged once, then every `warn_every_s`, retried every step) and ROS API errors into `MasterCallError`.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import socket
import time
import xmlrpc.client
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any
from xml.parsers.expat import ExpatError

from intradp_ros.core.health import Health, PeerFacts, bridge_status, unreachable_from

MIRROR_PREFIX = "/intradp_bridge_"
PUB = "pub"
SRV = "srv"

# (kind, topic or service name, original node) identifies one mirrored registration.
MirrorKey = tuple[str, str, str]
# (node XML-RPC URI, topic type or rosrpc URI) is what a mirror was registered with.
MirrorTarget = tuple[str, str]

ProxyFactory = Callable[[str], Any]

_UNREACHABLE = (OSError, http.client.HTTPException, xmlrpc.client.ProtocolError, ExpatError, EOFError)


def mirror_prefix(src_uri: str, dst_uri: str) -> str:
    """Caller-id namespace of the mirrors one bridge direction registers (stable across bridge restarts)."""
    digest = hashlib.sha1(f"{src_uri.rstrip('/')}->{dst_uri.rstrip('/')}".encode()).hexdigest()[:8]
    return f"{MIRROR_PREFIX}{digest}"


def mirror_caller_id(prefix: str, node: str) -> str:
    """Caller id of the mirror of `node` (a valid graph name: prefix + the original's name)."""
    return f"{prefix}/{node.lstrip('/')}"


def is_mirror(caller_id: str) -> bool:
    """True for registrations made by any master bridge; those are never mirrored again."""
    return caller_id.startswith(MIRROR_PREFIX)


class MasterUnreachable(Exception):
    """The master (or node) did not answer at the transport level; the step is retried later."""

    def __init__(self, link: MasterLink, reason: str) -> None:
        super().__init__(f"{link.label} master {link.uri} unreachable: {reason}")
        self.link = link
        self.reason = reason


class MasterCallError(Exception):
    """The master answered with a ROS API error (code != 1) or an XML-RPC fault."""


def describe_error(err: BaseException) -> str:
    """One line for a log, no stack trace."""
    if isinstance(err, socket.timeout):
        return "timed out"
    text = str(err) or type(err).__name__
    return f"{type(err).__name__}: {text}" if type(err).__name__ not in text else text


class TimeoutTransport(xmlrpc.client.Transport):
    """xmlrpc transport with a socket timeout, so a vanished peer cannot hang the bridge."""

    def __init__(self, timeout_s: float) -> None:
        super().__init__()
        self._timeout_s = timeout_s

    def make_connection(self, host: Any) -> http.client.HTTPConnection:
        conn = super().make_connection(host)
        conn.timeout = self._timeout_s
        return conn


def xmlrpc_proxy_factory(timeout_s: float = 1.0) -> ProxyFactory:
    """ServerProxy factory with a per-call timeout (used for masters and for node liveness checks)."""

    def make(uri: str) -> xmlrpc.client.ServerProxy:
        return xmlrpc.client.ServerProxy(uri, transport=TimeoutTransport(timeout_s), allow_none=True)

    return make


@dataclass(frozen=True)
class Filters:
    """fnmatch globs (``*`` also matches ``/``) selecting the topics and services to sync."""

    topics: Sequence[str] = ("/intradp/*", "/diagnostics")  # node health of both sides on either master
    services: Sequence[str] = ("/intradp/*",)
    exclude_topics: Sequence[str] = ("/rosout", "/rosout_agg")
    exclude_services: Sequence[str] = ("*/get_loggers", "*/set_logger_level")

    def topic(self, name: str) -> bool:
        return _matches(name, self.topics) and not _matches(name, self.exclude_topics)

    def service(self, name: str) -> bool:
        return _matches(name, self.services) and not _matches(name, self.exclude_services)


def _matches(name: str, globs: Iterable[str]) -> bool:
    return any(fnmatchcase(name, g) for g in globs)


@dataclass(frozen=True)
class SystemState:
    """getSystemState as name -> set of caller ids, per kind."""

    publishers: Mapping[str, frozenset[str]] = field(default_factory=dict)
    subscribers: Mapping[str, frozenset[str]] = field(default_factory=dict)
    services: Mapping[str, frozenset[str]] = field(default_factory=dict)

    @classmethod
    def from_xmlrpc(cls, raw: Sequence[Sequence[Any]]) -> SystemState:
        def table(rows: Sequence[Any]) -> dict[str, frozenset[str]]:
            return {str(name): frozenset(str(n) for n in nodes) for name, nodes in rows}

        pubs, subs, srvs = raw
        return cls(table(pubs), table(subs), table(srvs))


@dataclass
class RememberedNode:
    """What a restored node needs: its URI and the services it provided (topics are asked from the node)."""

    uri: str
    services: dict[str, str] = field(default_factory=dict)  # service name -> rosrpc URI


class MasterLink:
    """One master: calls with clean errors, reachability and restart tracking, cached lookups, last seen nodes."""

    def __init__(
        self,
        label: str,
        uri: str,
        proxy: Any,
        caller_id: str,
        log: logging.Logger,
        clock: Callable[[], float] = time.monotonic,
        refresh_s: float = 2.0,
        warn_every_s: float = 10.0,
    ) -> None:
        self.label = label
        self.uri = uri.rstrip("/")
        self.proxy = proxy
        self.caller_id = caller_id
        self.log = log
        self.clock = clock
        self.refresh_s = refresh_s
        self.warn_every_s = warn_every_s
        self.reachable = False
        self.pid: int | None = None
        self.state = SystemState()
        self.types: dict[str, str] = {}
        self.remembered: dict[str, RememberedNode] = {}
        self._types_at = float("-inf")
        self._node_uris: dict[str, tuple[str, float]] = {}
        self._service_uris: dict[str, tuple[str, str, float]] = {}
        self._down_since: float | None = None
        self._last_warn = float("-inf")
        self.restarts = 0

    # ---- calls -------------------------------------------------------------------------------------
    def call_as(self, caller_id: str, method: str, *args: Any) -> Any:
        """Call a Master API method; returns its value, raises MasterUnreachable / MasterCallError."""
        try:
            reply = getattr(self.proxy, method)(caller_id, *args)
        except xmlrpc.client.Fault as fault:
            raise MasterCallError(f"{method} on the {self.label} master: fault {fault.faultString}") from None
        except _UNREACHABLE as err:
            raise MasterUnreachable(self, describe_error(err)) from None
        try:
            code, status, value = reply
        except (TypeError, ValueError):
            raise MasterCallError(f"{method} on the {self.label} master: malformed reply {reply!r:.80}") from None
        if code != 1:
            raise MasterCallError(f"{method}{tuple(args)!r:.120} on the {self.label} master: {status}")
        return value

    def call(self, method: str, *args: Any) -> Any:
        return self.call_as(self.caller_id, method, *args)

    # ---- reachability ------------------------------------------------------------------------------
    def check(self) -> bool:
        """Poll getPid. Returns True when the master restarted since the last contact (new pid)."""
        try:
            pid = int(self.call("getPid"))
        except (MasterUnreachable, MasterCallError) as err:
            self.mark_down(err)
            return False
        restarted = self.pid is not None and pid != self.pid
        if not self.reachable:
            if self._down_since is not None:
                away = self.clock() - self._down_since
                how = ", restarted" if restarted else (", same process" if self.pid is not None else "")
                self.log.info("%s master %s reachable after %.1f s (pid %s%s)", self.label, self.uri, away, pid, how)
            else:
                self.log.info("%s master %s reachable (pid %s)", self.label, self.uri, pid)
        elif restarted:
            self.log.info("%s master %s restarted (pid %s -> %s)", self.label, self.uri, self.pid, pid)
        self.reachable = True
        self._down_since = None
        self._last_warn = float("-inf")
        if restarted:
            self.restarts += 1
            self.forget_caches()
        self.pid = pid
        return restarted

    def mark_down(self, err: BaseException) -> None:
        """Record a failure; log it on the first failure and then every warn_every_s (no stack traces)."""
        now = self.clock()
        reason = err.reason if isinstance(err, MasterUnreachable) else str(err)
        if self.reachable or self._down_since is None:
            self._down_since = now
        if self.reachable or now - self._last_warn >= self.warn_every_s:
            away = now - self._down_since
            self.log.warning(
                "%s master %s unreachable (%s)%s; retrying, mirrors on the other side kept",
                self.label,
                self.uri,
                reason,
                f" for {away:.0f} s" if away >= 1 else "",
            )
            self._last_warn = now
        self.reachable = False
        if isinstance(err, MasterCallError):  # answered but not sanely: do not trust its pid any more
            self.pid = None

    def forget_caches(self) -> None:
        self.types.clear()
        self._types_at = float("-inf")
        self._node_uris.clear()
        self._service_uris.clear()

    # ---- state and lookups ---------------------------------------------------------------------------
    def fetch_state(self, filters: Filters) -> None:
        """Refresh getSystemState, and getTopicTypes when a synced topic has no known type or it is stale."""
        self.state = SystemState.from_xmlrpc(self.call("getSystemState"))
        topics = [t for t in list(self.state.publishers) + list(self.state.subscribers) if filters.topic(t)]
        now = self.clock()
        if any(t not in self.types for t in topics) or now - self._types_at >= self.refresh_s:
            self.types = {str(t): str(ty) for t, ty in self.call("getTopicTypes")}
            self._types_at = now

    def node_uri(self, node: str) -> str | None:
        """XML-RPC URI of `node` (cached for refresh_s); None if the master does not know it (any more)."""
        now = self.clock()
        cached = self._node_uris.get(node)
        if cached is not None and now - cached[1] < self.refresh_s:
            return cached[0]
        try:
            uri = str(self.call("lookupNode", node))
        except MasterCallError:
            self._node_uris.pop(node, None)
            return None
        self._node_uris[node] = (uri, now)
        return uri

    def service_uri(self, service: str, provider: str) -> str | None:
        """rosrpc URI of `service` as provided by `provider` (cached for refresh_s or until the provider changes)."""
        now = self.clock()
        cached = self._service_uris.get(service)
        if cached is not None and cached[0] == provider and now - cached[2] < self.refresh_s:
            return cached[1]
        try:
            uri = str(self.call("lookupService", service))
        except MasterCallError:
            self._service_uris.pop(service, None)
            return None
        self._service_uris[service] = (provider, uri, now)
        return uri


@dataclass
class _Gap:
    """A subscriber seen without a connection to one mirrored publisher, and when to act on it next."""

    since: float
    next_at: float
    sent: int = 0  # publisherUpdates sent for it so far
    pub_missing: int = 0  # checks that found its publisher dead or not publishing the topic


# (destination label, subscriber node, topic, publisher URI) identifies one gap.
GapKey = tuple[str, str, str, str]
# topic -> {publisher URI (normalized): original node} for the mirrors of one direction.
MirroredTopics = dict[str, dict[str, str]]

_NODE_ERRORS = (xmlrpc.client.Fault, TypeError, ValueError, IndexError, KeyError) + _UNREACHABLE


def _norm_uri(uri: str) -> str:
    return str(uri).rstrip("/")


class ConnectionWatch:
    """Gets remote subscribers connected again to a mirrored publisher that came back at the same node URI.

    Why: registrations alone cannot show a publisher that was unregistered and registered again between two polls
    (same caller id, same URI), yet its old TCPROS connections are gone and the subscriber's master, which only
    knows the unchanged mirror, sends no publisherUpdate. So each poll asks (getBusInfo, slave API) the real
    subscriber nodes of mirrored topics on the destination which publisher URIs they are connected to. A
    subscriber missing a mirrored publisher for `grace_s` (long enough for a normal connect after a master's
    own publisherUpdate, so no duplicate connection is started) gets the complete publisher list of the topic
    on its master, as its master would send it, if the publisher answers getPublications and still publishes
    the topic. rospy and roscpp only connect to publishers they are not connected to on a publisherUpdate.
    Bounds: at most `max_probes` nodes per poll (oldest probe first) and no new call once `budget_s` of the
    poll is spent; a node that does not answer is skipped for a backoff (1 s doubling to `backoff_max_s`).
    A gap still seen after a publisherUpdate is re-sent every `resend_s` (a publisher advertised again and
    again can drop the connection before a probe sees it), after `fast_resends` sends with a backoff doubling
    to `backoff_max_s` (a subscriber that cannot connect, e.g. a type mismatch, is not flooded). A gap is
    forgotten as soon as a probe sees the connection. Every call uses the node proxies' timeout.
    """

    def __init__(
        self,
        node_proxy_factory: ProxyFactory,
        caller_id: str,
        log: logging.Logger,
        clock: Callable[[], float],
        warn: Callable[..., None],
        grace_s: float = 0.5,
        max_probes: int = 8,
        budget_s: float = 0.5,
        resend_s: float = 1.0,
        fast_resends: int = 5,
        backoff_max_s: float = 30.0,
    ) -> None:
        self.node_proxy_factory = node_proxy_factory
        self.caller_id = caller_id
        self.log = log
        self.clock = clock
        self.warn = warn
        self.grace_s = grace_s
        self.max_probes = max_probes
        self.budget_s = budget_s
        self.resend_s = resend_s
        self.fast_resends = fast_resends
        self.backoff_max_s = backoff_max_s
        self.gaps: dict[GapKey, _Gap] = {}
        self.updates_sent = 0
        self._last_probe: dict[tuple[str, str], float] = {}  # (label, node) -> time
        self._node_down: dict[tuple[str, str], tuple[float, float]] = {}  # (label, node) -> (skip until, backoff)

    def _resend_delay(self, sent: int) -> float:
        """Wait before acting on a gap again after `sent` publisherUpdates for it."""
        if sent <= self.fast_resends:
            return self.resend_s
        return min(self.backoff_max_s, self.resend_s * 2.0 ** (sent - self.fast_resends))

    def check(
        self, dst: MasterLink, mirrored: MirroredTopics, is_foreign: Callable[[str], bool], started: float
    ) -> None:
        """Probe the subscribers of `mirrored` topics on `dst` and re-send publisherUpdate where a gap persists.

        `started` is when this poll's probes began (the time budget is shared by both directions)."""
        label = dst.label
        wanted: dict[str, list[str]] = {}  # subscriber node -> its mirrored topics
        for topic in mirrored:
            for node in dst.state.subscribers.get(topic, ()):
                if not is_foreign(node):
                    wanted.setdefault(node, []).append(topic)
        live_gaps = {
            (label, node, topic, uri) for node, topics in wanted.items() for topic in topics for uri in mirrored[topic]
        }
        for key in [k for k in self.gaps if k[0] == label and k not in live_gaps]:
            del self.gaps[key]
        for book in (self._last_probe, self._node_down):
            for key in [k for k in book if k[0] == label and k[1] not in wanted]:
                del book[key]
        now = self.clock()
        due = [n for n in wanted if self._node_down.get((label, n), (float("-inf"), 0.0))[0] <= now]
        due.sort(key=lambda n: self._last_probe.get((label, n), float("-inf")))
        publishing: dict[str, set[str] | None] = {}  # publisher URI -> topics it publishes (None: no answer)
        for node in due[: self.max_probes]:
            if self.clock() - started >= self.budget_s:
                break
            self._last_probe[(label, node)] = self.clock()
            uri = dst.node_uri(node)
            if uri is None:
                continue
            connected = self._connected_publishers(label, node, uri)
            if connected is None:
                continue
            for topic in wanted[node]:
                for pub_uri, pub_node in mirrored[topic].items():
                    key = (label, node, topic, pub_uri)
                    if pub_uri in connected.get(topic, ()):
                        self.gaps.pop(key, None)
                        continue
                    gap = self.gaps.setdefault(key, _Gap(since=now, next_at=now + self.grace_s))
                    if now >= gap.next_at and self.clock() - started < self.budget_s:
                        self._close_gap(dst, node, uri, topic, pub_uri, pub_node, gap, publishing)

    def _connected_publishers(self, label: str, node: str, uri: str) -> dict[str, set[str]] | None:
        """topic -> publisher URIs the subscriber node `node` is connected to; None if it does not answer."""
        try:
            code, _status, info = self.node_proxy_factory(uri).getBusInfo(self.caller_id)
            if code != 1:
                raise ValueError(f"getBusInfo code {code}")
            connected: dict[str, set[str]] = {}
            for entry in info:
                # [connection id, publisher URI (inbound) or subscriber id (outbound), direction, transport,
                #  topic, connected, info]
                if str(entry[2]) == "i" and (len(entry) < 6 or bool(entry[5])):
                    connected.setdefault(str(entry[4]), set()).add(_norm_uri(entry[1]))
        except _NODE_ERRORS as err:
            _skip_until, backoff = self._node_down.get((label, node), (0.0, 0.5))
            backoff = min(self.backoff_max_s, backoff * 2)
            self._node_down[(label, node)] = (self.clock() + backoff, backoff)
            self.warn(
                "subscriber %s on the %s side does not answer getBusInfo (%s); retried with a backoff "
                "(at most every %.0f s)",
                node,
                label,
                describe_error(err),
                self.backoff_max_s,
            )
            return None
        self._node_down.pop((label, node), None)
        return connected

    def _publishes(self, pub_uri: str, topic: str, publishing: dict[str, set[str] | None]) -> bool:
        """Whether the publisher node at `pub_uri` answers and publishes `topic` (asked once per poll)."""
        if pub_uri not in publishing:
            try:
                code, _status, pubs = self.node_proxy_factory(pub_uri).getPublications(self.caller_id)
                publishing[pub_uri] = {str(t) for t, _type in pubs} if code == 1 else None
            except _NODE_ERRORS:
                publishing[pub_uri] = None
        topics = publishing[pub_uri]
        return topics is not None and topic in topics

    def _close_gap(
        self,
        dst: MasterLink,
        node: str,
        uri: str,
        topic: str,
        pub_uri: str,
        pub_node: str,
        gap: _Gap,
        publishing: dict[str, set[str] | None],
    ) -> None:
        now = self.clock()
        if not self._publishes(pub_uri, topic, publishing):
            # dead (e.g. SIGKILL: still registered) or no longer publishing: nothing to connect to; the
            # registration sync removes the mirror when its master says so
            gap.pub_missing += 1
            gap.next_at = now + min(self.backoff_max_s, self.resend_s * 2.0 ** (gap.pub_missing - 1))
            return
        publishers = [u for u in (dst.node_uri(c) for c in sorted(dst.state.publishers.get(topic, ()))) if u]
        if not any(_norm_uri(u) == pub_uri for u in publishers):
            return  # the mirror is not (yet) on the subscriber's master: nothing to tell
        gap.sent += 1
        gap.next_at = now + self._resend_delay(gap.sent)
        try:
            self.node_proxy_factory(uri).publisherUpdate(self.caller_id, topic, publishers)
        except _NODE_ERRORS as err:
            self.warn(
                "could not send publisherUpdate for %s to %s on the %s side: %s",
                topic,
                node,
                dst.label,
                describe_error(err),
            )
            return
        self.updates_sent += 1
        if gap.sent <= self.fast_resends:
            self.log.info(
                "subscriber %s of %s on the %s side not connected to %s (%s) for %.1f s (publisher "
                "advertised again at the same URI?): sent it publisherUpdate #%d",
                node,
                topic,
                dst.label,
                pub_node,
                pub_uri,
                now - gap.since,
                gap.sent,
            )
        else:
            self.warn(
                "subscriber %s of %s on the %s side does not connect to %s (%s) after publisherUpdates; "
                "retrying every %.0f s at most",
                node,
                topic,
                dst.label,
                pub_node,
                pub_uri,
                self.backoff_max_s,
            )


class MasterSync:
    """Keeps mirrors of the filtered publishers and services of each master on the other one.

    `step()` does one poll (call it every 0.2-0.5 s), `cleanup()` removes every mirror this bridge direction owns.
    With `reattach` a `ConnectionWatch` reconnects remote subscribers that lost a mirrored publisher (one
    advertised again at the same URI between two polls) after `reattach_grace_s`.
    `proxy_factory(uri)` gives ServerProxy-like objects (for the two masters and for node liveness checks).
    """

    def __init__(
        self,
        local_uri: str,
        peer_uri: str,
        proxy_factory: ProxyFactory,
        caller_id: str = "/master_bridge",
        filters: Filters = Filters(),
        restore: bool = True,
        log: logging.Logger | None = None,
        clock: Callable[[], float] = time.monotonic,
        refresh_s: float = 2.0,
        warn_every_s: float = 10.0,
        node_proxy_factory: ProxyFactory | None = None,
        reattach: bool = True,
        reattach_grace_s: float = 0.5,
    ) -> None:
        if local_uri.rstrip("/") == peer_uri.rstrip("/"):
            raise ValueError(f"local and peer master are the same ({local_uri}); nothing to bridge")
        self.log = log or logging.getLogger("intradp_ros.master_bridge")
        self.caller_id = caller_id
        self.filters = filters
        self.restore = restore
        self.node_proxy_factory = node_proxy_factory or proxy_factory
        self.local = MasterLink(
            "local", local_uri, proxy_factory(local_uri), caller_id, self.log, clock, refresh_s, warn_every_s
        )
        self.peer = MasterLink(
            "peer", peer_uri, proxy_factory(peer_uri), caller_id, self.log, clock, refresh_s, warn_every_s
        )
        # direction -> (source, destination, caller-id prefix of its mirrors, what was registered)
        self.directions: list[tuple[MasterLink, MasterLink, str, dict[MirrorKey, MirrorTarget]]] = [
            (self.local, self.peer, mirror_prefix(self.local.uri, self.peer.uri), {}),
            (self.peer, self.local, mirror_prefix(self.peer.uri, self.local.uri), {}),
        ]
        self._conflicts_warned: set[tuple[str, str]] = set()
        self._in_sync = False
        self._warned: dict[str, float] = {}
        self.clock = clock
        self.warn_every_s = warn_every_s
        self.adopted = 0  # mirrors found on a master that an earlier bridge instance had registered
        self.unreachable_uris: set[str] = set()  # mirrored node URIs the other side cannot dial (flagged once)
        self.watch: ConnectionWatch | None = None
        if reattach:
            self.watch = ConnectionWatch(
                self.node_proxy_factory, caller_id, self.log, clock, self._warn, grace_s=reattach_grace_s
            )

    # ---- one poll ------------------------------------------------------------------------------------------
    def step(self) -> None:
        """Poll both masters, restore a restarted master's nodes, bring the mirrors up to date both ways, then get
        remote subscribers that lost a mirrored publisher connected again."""
        for link in (self.local, self.peer):
            if link.check() and self.restore:
                self._guard(lambda link=link: self._restore(link))
        for link in (self.local, self.peer):
            if link.reachable:
                self._guard(lambda link=link: link.fetch_state(self.filters))
        for src, dst, prefix, registered in self.directions:
            if src.reachable and dst.reachable:
                self._guard(
                    lambda src=src, dst=dst, prefix=prefix, registered=registered: self._sync_direction(
                        src, dst, prefix, registered
                    )
                )
        watch = self.watch
        if watch is not None:
            started = self.clock()  # the probes' time budget, shared by both directions
            for src, dst, _prefix, registered in self.directions:
                if src.reachable and dst.reachable:
                    self._guard(
                        lambda dst=dst, registered=registered: watch.check(
                            dst, self.mirrored_topics(registered), self._is_foreign, started
                        )
                    )
        for link in (self.local, self.peer):
            if link.reachable:
                self._guard(lambda link=link: self._remember(link))
        in_sync = self.local.reachable and self.peer.reachable
        if in_sync and not self._in_sync:
            self.log.info(
                "in sync: %d mirrors (%d adopted from an earlier bridge run)", self.mirror_count(), self.adopted
            )
        self._in_sync = in_sync

    def _guard(self, action: Callable[[], None]) -> None:
        """Run one part of a step; an unreachable master is marked down (the step goes on with the rest)."""
        try:
            action()
        except MasterUnreachable as err:
            err.link.mark_down(err)
        except MasterCallError as err:
            self._warn("%s", err)

    def _warn(self, fmt: str, *args: Any) -> None:
        """A warning that repeats every step (e.g. a master refusing a call) is logged once per warn_every_s."""
        text = fmt % args
        now = self.clock()
        if now - self._warned.get(text, float("-inf")) >= self.warn_every_s:
            if len(self._warned) > 1000:  # bounded memory with many distinct messages
                self._warned.clear()
            self._warned[text] = now
            self.log.warning("%s", text)

    # ---- mirrors -------------------------------------------------------------------------------------------
    def desired_mirrors(self, src: MasterLink, dst: MasterLink, prefix: str) -> dict[MirrorKey, MirrorTarget]:
        """The mirrors `dst` should hold for `src`'s current filtered publishers and services."""
        want: dict[MirrorKey, MirrorTarget] = {}
        for topic, nodes in src.state.publishers.items():
            if not self.filters.topic(topic):
                continue
            for node in nodes:
                if self._is_foreign(node):
                    continue
                uri = src.node_uri(node)
                if uri is not None:
                    want[(PUB, topic, node)] = (uri, src.types.get(topic, "*"))
        for service, nodes in src.state.services.items():
            if not self.filters.service(service):
                continue
            for node in nodes:
                if self._is_foreign(node):
                    continue
                local_owners = [n for n in dst.state.services.get(service, ()) if not n.startswith(prefix + "/")]
                if local_owners:
                    self._warn_conflict(dst, service, local_owners)
                    continue
                uri, srv_uri = src.node_uri(node), src.service_uri(service, node)
                if uri is not None and srv_uri is not None:
                    want[(SRV, service, node)] = (uri, srv_uri)
        return want

    def _is_foreign(self, node: str) -> bool:
        return is_mirror(node) or node == self.caller_id

    def _warn_conflict(self, dst: MasterLink, service: str, owners: Sequence[str]) -> None:
        if (dst.label, service) not in self._conflicts_warned:
            self._conflicts_warned.add((dst.label, service))
            self.log.warning(
                "service %s exists on both masters (on the %s side by %s): not mirrored there",
                service,
                dst.label,
                ", ".join(sorted(owners)),
            )

    @staticmethod
    def present_mirrors(dst: MasterLink, prefix: str) -> dict[MirrorKey, str]:
        """Mirrors of this direction that `dst` holds now (key -> mirror caller id), read from its state."""
        have: dict[MirrorKey, str] = {}
        for kind, table in ((PUB, dst.state.publishers), (SRV, dst.state.services)):
            for name, nodes in table.items():
                for node in nodes:
                    if node.startswith(prefix + "/"):
                        have[(kind, name, "/" + node[len(prefix) + 1 :])] = node
        return have

    @staticmethod
    def mirrored_topics(registered: Mapping[MirrorKey, MirrorTarget]) -> MirroredTopics:
        """topic -> {publisher URI: original node} of the publisher mirrors one direction holds."""
        topics: MirroredTopics = {}
        for (kind, topic, node), (uri, _type) in registered.items():
            if kind == PUB:
                topics.setdefault(topic, {})[_norm_uri(uri)] = node
        return topics

    def _sync_direction(
        self, src: MasterLink, dst: MasterLink, prefix: str, registered: dict[MirrorKey, MirrorTarget]
    ) -> None:
        want = self.desired_mirrors(src, dst, prefix)
        have = self.present_mirrors(dst, prefix)
        for key in list(registered):
            if key not in have:  # the destination forgot it (restart) or someone removed it
                del registered[key]
        for key in have:
            if key not in registered:  # left by an earlier bridge instance: learn what it points at
                target = self._adopt(dst, key, have[key])
                if target is not None:
                    registered[key] = target
                    self.adopted += 1
        stale = [k for k in have if k not in want or (k in registered and registered[k] != want[k])]
        for key in stale:
            self._unregister(dst, key, have[key], registered.get(key))
            registered.pop(key, None)
            if key not in want:
                self.log.info(
                    "removed mirror of %s %s by %s on the %s master (gone on the %s side)",
                    "publisher" if key[0] == PUB else "service",
                    key[1],
                    key[2],
                    dst.label,
                    src.label,
                )
        for key, target in want.items():
            if key in registered:
                continue
            mirror_id = mirror_caller_id(prefix, key[2])
            try:
                if key[0] == PUB:
                    dst.call_as(mirror_id, "registerPublisher", key[1], target[1], target[0])
                else:
                    dst.call_as(mirror_id, "registerService", key[1], target[1], target[0])
            except MasterCallError as err:
                self._warn("could not mirror %s on the %s master: %s", key[1], dst.label, err)
                continue
            registered[key] = target
            self._flag_unreachable(dst, key, target)
            self.log.info(
                "mirrored %s %s of %s (%s) from the %s to the %s master as %s",
                "publisher" if key[0] == PUB else "service",
                key[1],
                key[2],
                target[0],
                src.label,
                dst.label,
                mirror_id,
            )

    def _flag_unreachable(self, dst: MasterLink, key: MirrorKey, target: MirrorTarget) -> None:
        """Warn once per URI when a mirrored node (or service) URI is a loopback address such as Debian's
        127.0.1.1 while the other master is not on loopback: its subscribers would dial their own machine."""
        uris = [target[0]] + ([target[1]] if key[0] != PUB else [])
        for uri in uris:
            if uri not in self.unreachable_uris and unreachable_from(uri, dst.uri):
                self.unreachable_uris.add(uri)
                self.log.warning(
                    "%s %s of %s is at %s, which the %s side (%s) cannot reach: set ROS_IP or ROS_HOSTNAME "
                    "to an address it can on the %s side before starting the node",
                    "publisher" if key[0] == PUB else "service",
                    key[1],
                    key[2],
                    uri,
                    dst.label,
                    dst.uri,
                    "local" if dst is self.peer else "peer",
                )

    def health(self) -> Health:
        """Both masters' reachability, the mirrors and the unreachable node URIs (core.health.bridge_status)."""
        peers = [PeerFacts(m.label, m.uri, m.reachable, m.restarts) for m in (self.local, self.peer)]
        return bridge_status(peers, self.mirror_count(), self.unreachable_uris)

    def _adopt(self, dst: MasterLink, key: MirrorKey, mirror_id: str) -> MirrorTarget | None:
        try:
            uri = str(dst.call("lookupNode", mirror_id))
            extra = str(dst.call("lookupService", key[1])) if key[0] == SRV else dst.types.get(key[1], "*")
        except MasterCallError:
            return None
        return uri, extra

    def _unregister(self, dst: MasterLink, key: MirrorKey, mirror_id: str, target: MirrorTarget | None) -> None:
        """Remove one mirror from `dst` (URIs from our record, else looked up on `dst`)."""
        try:
            if target is None:
                target = self._adopt(dst, key, mirror_id)
                if target is None:
                    return
            if key[0] == PUB:
                dst.call_as(mirror_id, "unregisterPublisher", key[1], target[0])
            else:
                dst.call_as(mirror_id, "unregisterService", key[1], target[1])
        except MasterCallError as err:
            self._warn("could not remove mirror %s %s from the %s master: %s", mirror_id, key[1], dst.label, err)

    # ---- restart recovery ----------------------------------------------------------------------------------
    def _remember(self, link: MasterLink) -> None:
        """Keep the real nodes that have filtered registrations on `link`, to restore them after its restart."""
        nodes: dict[str, RememberedNode] = {}

        def note(node: str) -> RememberedNode | None:
            if self._is_foreign(node):
                return None
            if node not in nodes:
                uri = link.node_uri(node)
                if uri is None:
                    return None
                nodes[node] = RememberedNode(uri)
            return nodes[node]

        for table, keep in ((link.state.publishers, self.filters.topic), (link.state.subscribers, self.filters.topic)):
            for name, callers in table.items():
                if keep(name):
                    for node in callers:
                        note(node)
        for service, callers in link.state.services.items():
            if self.filters.service(service):
                for node in callers:
                    entry = note(node)
                    srv_uri = link.service_uri(service, node) if entry is not None else None
                    if entry is not None and srv_uri is not None:
                        entry.services[service] = srv_uri
        link.remembered = nodes

    def _restore(self, link: MasterLink) -> None:
        """Re-register on a restarted master the filtered registrations of the nodes last seen there, if alive."""
        restored = alive_nodes = gone = 0
        for node, seen in sorted(link.remembered.items()):
            try:
                current = str(link.call("lookupNode", node))
            except MasterCallError:
                current = None
            if current is not None and current != seen.uri:
                continue  # a new node of that name registered already: it must not be bumped
            answer = self._ask_node(seen.uri)
            if answer is None:
                gone += 1
                continue
            alive_nodes += 1
            pubs, subs = answer
            for topic, topic_type in pubs:
                if self.filters.topic(topic):
                    restored += self._restore_one(link, node, "registerPublisher", topic, topic_type, seen.uri)
            for topic, topic_type in subs:
                if self.filters.topic(topic):
                    restored += self._restore_one(link, node, "registerSubscriber", topic, topic_type, seen.uri)
            for service, srv_uri in seen.services.items():
                restored += self._restore_one(link, node, "registerService", service, srv_uri, seen.uri)
        if link.remembered:
            self.log.info(
                "%s master restarted: restored %d registrations of %d live nodes (%d gone)",
                link.label,
                restored,
                alive_nodes,
                gone,
            )

    def _restore_one(self, link: MasterLink, node: str, method: str, name: str, extra: str, uri: str) -> int:
        try:
            link.call_as(node, method, name, extra, uri)
            return 1
        except MasterCallError as err:
            self.log.warning("could not restore %s of %s: %s", name, node, err)
            return 0

    def _ask_node(self, uri: str) -> tuple[list[tuple[str, str]], list[tuple[str, str]]] | None:
        """The node's own publications and subscriptions, or None if it does not answer (gone)."""
        try:
            node = self.node_proxy_factory(uri)
            replies = [node.getPublications(self.caller_id), node.getSubscriptions(self.caller_id)]
            lists = []
            for code, _status, value in replies:
                if code != 1:
                    return None
                lists.append([(str(t), str(ty)) for t, ty in value])
            return lists[0], lists[1]
        except (xmlrpc.client.Fault, TypeError, ValueError) + _UNREACHABLE:
            return None

    # ---- exit ------------------------------------------------------------------------------------------------
    def cleanup(self) -> int:
        """Unregister every mirror of both directions (also ones adopted from earlier runs); returns how many."""
        removed = 0
        for _src, dst, prefix, registered in self.directions:
            try:
                dst.state = SystemState.from_xmlrpc(dst.call("getSystemState"))
            except (MasterUnreachable, MasterCallError) as err:
                if registered:
                    self.log.warning("cannot remove %d mirrors from the %s master: %s", len(registered), dst.label, err)
                continue
            for key, mirror_id in self.present_mirrors(dst, prefix).items():
                try:
                    self._unregister(dst, key, mirror_id, registered.get(key))
                    removed += 1
                except MasterUnreachable as err:
                    self.log.warning("stopped removing mirrors from the %s master: %s", dst.label, err.reason)
                    break
            registered.clear()
        return removed

    def mirror_count(self) -> int:
        return sum(len(registered) for *_, registered in self.directions)
