"""What the Redis broker keeps in Redis and sends through it: key names, records, Lua.

Keys of one channel share the hash tag ``{channel}`` (channel names cannot hold
braces), so in a Redis Cluster they sit in one slot and one script may touch
them all::

    fastws:{C}:m   hash  e = epoch, o = last offset,    (expires history_meta_ttl
                         r = replication id of the        after the last publication)
                         server that wrote them
    fastws:{C}:h   list  history records, oldest first  (expires history_ttl after
                                                          the last publication)
    fastws:{C}:p   hash  client id -> presence record   (expires presence_ttl after
                                                          the last add)
    fastws:nodes   hash  node id -> node record          (on the first server; each
                                                          entry expires on its own)

Occupancy, on the first server: how many nodes are subscribed to each channel,
and what each node holds under a lease it renews every ``node_ttl / 3``::

    fastws:{hub}:occupancy   hash  channel -> number of nodes subscribed
    fastws:{hub}:leases      zset  node id -> when its lease ends (ms)
    fastws:{hub}:node:ID     set   the channels node ID is subscribed to

(one hash tag, so that in a Redis Cluster one script may touch them all)

A node counts a channel once (``OCCUPY``), uncounts it once (``VACATE``), and
whoever moves a count between 0 and 1 is the one node told. A node whose lease
ended is dropped by the first live node that notices (``REAP``), which is then
told of the channels that left vacated. A node that finds its lease gone (it
was dropped, or Redis lost its data) counts its channels again.

Pub/sub channels: ``fastws:{C}`` carries the channel's publications, joins and
leaves; ``fastws:ctl`` carries private messages, user disconnects and control
messages to every node. Redis pub/sub ignores the database number, so with a database other than
0 both names get the suffix ``@DB`` and hubs on other databases stay apart. In a
Redis Cluster they are sharded pub/sub channels (``SSUBSCRIBE``, ``SPUBLISH``)
where the servers have them (Redis 7): each lives on the node owning its slot.

Records are ``,``-separated decimal fields followed by raw bytes; a user name
is preceded by its length (-1 when there is none), so no escaping is needed:

    publication message   p OFFSET , EPOCH , ULEN , USER DATA
    history record          OFFSET , EXPIRES_MS , ULEN , USER DATA
    join / leave message  j|l CLEN , CLIENT ULEN , USER INFO
    presence record         EXPIRES_MS , ULEN , USER INFO
    user message          m ULEN , SLEN , USER SENDER DATA
    user disconnect       d CODE , ULEN , USER REASON
    control message       c DATA
    node record             EXPIRES_MS , INFO

Times come from Redis (``TIME``), so the clocks of the nodes do not matter.
"""

from __future__ import annotations

from fastws.hub.broker.base import ClientInfo, Publication

KEY_PREFIX = "fastws:"
CONTROL = "fastws:ctl"

PUBLICATION = ord("p")
JOIN = ord("j")
LEAVE = ord("l")
USER_MESSAGE = ord("m")
USER_DISCONNECT = ord("d")
CONTROL_MESSAGE = ord("c")
NODES_KEY = "fastws:nodes"
OCCUPANCY_KEY = "fastws:{hub}:occupancy"
LEASES_KEY = "fastws:{hub}:leases"


def meta_key(channel: str) -> str:
    return f"fastws:{{{channel}}}:m"


def history_key(channel: str) -> str:
    return f"fastws:{{{channel}}}:h"


def presence_key(channel: str) -> str:
    return f"fastws:{{{channel}}}:p"


def node_key(node: str) -> str:
    """The channels ``node`` is subscribed to (occupancy)."""
    return f"fastws:{{hub}}:node:{node}"


def pubsub_suffix(db: int) -> str:
    return f"@{db}" if db else ""


def pubsub_name(channel: str, suffix: str) -> bytes:
    return f"fastws:{{{channel}}}{suffix}".encode()


# -- records -------------------------------------------------------------------------


def user_field(user: str | None) -> bytes:
    """``ULEN , USER`` (the bytes that follow are the record's payload)."""
    if user is None:
        return b"-1,"
    encoded = user.encode()
    return b"%d,%s" % (len(encoded), encoded)


def _split_user(rest: bytes) -> tuple[str | None, bytes]:
    length, _, tail = rest.partition(b",")
    size = int(length)
    if size < 0:
        return None, tail
    return tail[:size].decode(), tail[size:]


def decode_publication(payload: bytes) -> Publication:
    """A ``p`` message (the leading ``p`` included)."""
    offset, epoch, rest = payload[1:].split(b",", 2)
    user, data = _split_user(rest)
    return Publication(int(offset), epoch.decode(), data, user)


def decode_history(record: bytes, epoch: str) -> Publication:
    offset, _expires, rest = record.split(b",", 2)
    user, data = _split_user(rest)
    return Publication(int(offset), epoch, data, user)


def encode_client(info: ClientInfo) -> bytes:
    """``CLEN , CLIENT ULEN , USER INFO`` for join and leave messages."""
    return user_field(info.client) + user_field(info.user) + (info.info or b"")


def decode_client(payload: bytes) -> ClientInfo:
    """A ``j`` or ``l`` message (the leading letter included)."""
    client, rest = _split_user(payload[1:])
    user, info = _split_user(rest)
    return ClientInfo(client or "", user or "", info or None)


def encode_presence(info: ClientInfo) -> bytes:
    """``ULEN , USER INFO``: the script puts the expiry in front."""
    return user_field(info.user) + (info.info or b"")


def decode_presence(client: bytes, record: bytes) -> ClientInfo:
    _expires, rest = record.split(b",", 1)
    user, info = _split_user(rest)
    return ClientInfo(client.decode(), user or "", info or None)


def encode_user_message(user: str, sender: str | None, data: bytes) -> bytes:
    target = user.encode()
    source = b"" if sender is None else sender.encode()
    size = -1 if sender is None else len(source)
    return b"m%d,%d,%s%s%s" % (len(target), size, target, source, data)


def encode_user_disconnect(user: str, code: int, reason: str) -> bytes:
    target = user.encode()
    return b"d%d,%d,%s%s" % (code, len(target), target, reason.encode())


def decode_user_message(payload: bytes) -> tuple[str, str | None, bytes]:
    user_length, sender_length, rest = payload[1:].split(b",", 2)
    size = int(user_length)
    user = rest[:size].decode()
    sender_size = int(sender_length)
    if sender_size < 0:
        return user, None, rest[size:]
    end = size + sender_size
    return user, rest[size:end].decode(), rest[end:]


def decode_user_disconnect(payload: bytes) -> tuple[str, int, str]:
    code, user_length, rest = payload[1:].split(b",", 2)
    size = int(user_length)
    return rest[:size].decode(), int(code), rest[size:].decode()


def decode_node(record: bytes) -> bytes:
    """The info of a node record (the script put the expiry in front)."""
    return record.split(b",", 1)[1]


# -- scripts ---------------------------------------------------------------------------

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

# The stream position: created with the caller's random epoch when missing (a
# lost or expired stream), and then its old history is dropped with it. The
# position also records the replication id of the server that wrote it. A
# replica promoted by a failover lists its old master's id as its previous one
# (master_replid2) and may lack that master's latest writes: there the stream
# starts again under a new epoch instead of reusing offsets its readers have
# seen. A server restarted from its files, or a cluster node that received the
# channel's slot, has another id and keeps the stream (and records its own id).
_POSITION = """
local meta = redis.call('HMGET', KEYS[1], 'e', 'o', 'r')
local epoch, offset = meta[1], tonumber(meta[2])
local replication = redis.call('INFO', 'replication')
local server = string.match(replication, 'master_replid:(%w+)')
if not epoch or meta[3] == string.match(replication, 'master_replid2:(%w+)') then
  epoch, offset = NEW_EPOCH, 0
  redis.call('HSET', KEYS[1], 'e', epoch, 'o', 0, 'r', server)
  redis.call('PEXPIRE', KEYS[1], META_TTL)
  redis.call('DEL', KEYS[2])
elseif meta[3] ~= server then
  redis.call('HSET', KEYS[1], 'r', server)
end
"""

# KEYS: meta, history. ARGV: pub/sub channel, ULEN,USER DATA, history size,
# history ttl ms, meta ttl ms, new epoch. Returns {offset, epoch}.
PUBLISH = (
    _POSITION.replace("NEW_EPOCH", "ARGV[6]").replace("META_TTL", "ARGV[5]")
    + """
offset = redis.call('HINCRBY', KEYS[1], 'o', 1)
redis.call('PEXPIRE', KEYS[1], ARGV[5])
local size = tonumber(ARGV[3])
if size > 0 then
"""
    + _NOW
    + """
  local ttl = tonumber(ARGV[4])
  local record = string.format('%d,%d,', offset, now + ttl) .. ARGV[2]
  redis.call('RPUSH', KEYS[2], record)
  redis.call('LTRIM', KEYS[2], -size, -1)
  redis.call('PEXPIRE', KEYS[2], ttl)
else
  redis.call('DEL', KEYS[2])
end
redis.call('PUBLISH', ARGV[1], string.format('p%d,', offset) .. epoch .. ',' .. ARGV[2])
return {offset, epoch}
"""
)

# The same for sharded pub/sub (Redis Cluster): the message goes to the
# subscribers of the node that owns the channel's slot, the one running this.
SPUBLISH = PUBLISH.replace("redis.call('PUBLISH'", "redis.call('SPUBLISH'")

# KEYS: meta, history. ARGV: since epoch ('' for none), since offset, limit (-1:
# no limit), new epoch, meta ttl ms, reverse (1: the records before since, the
# newest `limit` of them). Returns {epoch, offset, records}, records oldest
# first; records of expired publications are dropped first. History offsets are
# consecutive, so the wanted records are found by arithmetic.
HISTORY = (
    _POSITION.replace("NEW_EPOCH", "ARGV[4]").replace("META_TTL", "ARGV[5]")
    + """
local limit = tonumber(ARGV[3])
if limit == 0 then return {epoch, offset, {}} end
"""
    + _NOW
    + """
local first = redis.call('LINDEX', KEYS[2], 0)
while first do
  local expires = tonumber(string.match(first, '^%d+,(%d+),'))
  if expires > now then break end
  redis.call('LPOP', KEYS[2])
  first = redis.call('LINDEX', KEYS[2], 0)
end
if not first then return {epoch, offset, {}} end
if ARGV[1] ~= '' and ARGV[1] ~= epoch then return {epoch, offset, {}} end
local first_offset = tonumber(string.match(first, '^(%d+),'))
if ARGV[6] == '1' then
  local stop = redis.call('LLEN', KEYS[2]) - 1
  if ARGV[1] ~= '' then
    stop = math.min(stop, tonumber(ARGV[2]) - 1 - first_offset)
    if stop < 0 then return {epoch, offset, {}} end
  end
  local start = 0
  if limit > 0 then start = math.max(0, stop - limit + 1) end
  return {epoch, offset, redis.call('LRANGE', KEYS[2], start, stop)}
end
local start = 0
if ARGV[1] ~= '' then
  start = tonumber(ARGV[2]) + 1 - first_offset
  if start < 0 then start = 0 end
end
local stop = -1
if limit > 0 then stop = start + limit - 1 end
return {epoch, offset, redis.call('LRANGE', KEYS[2], start, stop)}
"""
)

# KEYS: presence hash (or the nodes hash). ARGV: client id (node id), record, ttl ms.
ADD_PRESENCE = (
    _NOW
    + """
local ttl = tonumber(ARGV[3])
redis.call('HSET', KEYS[1], ARGV[1], string.format('%d,', now + ttl) .. ARGV[2])
redis.call('PEXPIRE', KEYS[1], ttl)
return 1
"""
)

# KEYS: presence hash (or the nodes hash). Returns {client, record, ...} of live entries; expired
# ones are removed.
PRESENCE = (
    _NOW
    + """
local all = redis.call('HGETALL', KEYS[1])
local live = {}
for i = 1, #all, 2 do
  local expires = tonumber(string.match(all[i + 1], '^(%d+),'))
  if expires > now then
    live[#live + 1] = all[i]
    live[#live + 1] = all[i + 1]
  else
    redis.call('HDEL', KEYS[1], all[i])
  end
end
return live
"""
)

# -- occupancy: KEYS are always occupancy, leases, the node's channels --------------------

# ARGV: channel, node id, lease ms. Renews the node's lease and counts it in the
# channel; returns {1 when it is the first node there, 1 when the lease was gone}.
OCCUPY = (
    _NOW
    + """
local gone = redis.call('ZADD', KEYS[2], now + tonumber(ARGV[3]), ARGV[2])
if redis.call('SADD', KEYS[3], ARGV[1]) == 0 then return {0, gone} end
if redis.call('HINCRBY', KEYS[1], ARGV[1], 1) == 1 then return {1, gone} end
return {0, gone}
"""
)

# ARGV: channel. Uncounts the node from the channel; returns 1 when it was the last.
VACATE = """
if redis.call('SREM', KEYS[3], ARGV[1]) == 0 then return 0 end
if redis.call('HINCRBY', KEYS[1], ARGV[1], -1) > 0 then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
return 1
"""

# KEYS: leases. ARGV: node id, lease ms. Renews the lease; returns {1 when the
# lease was gone, the nodes whose lease ended (at most 100 at a time)}.
LEASE = (
    _NOW
    + """
local gone = redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
return {gone, redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, 100)}
"""
)

# ARGV: the node id of KEYS[3]. When its lease has ended, uncounts the node from
# every channel it held and forgets it; returns the channels left vacated. The
# lease is checked again here, so of nodes reaping at once only one gets them.
REAP = (
    _NOW
    + """
local lease = redis.call('ZSCORE', KEYS[2], ARGV[1])
if not lease or tonumber(lease) > now then return {} end
local vacated = {}
for _, channel in ipairs(redis.call('SMEMBERS', KEYS[3])) do
  if redis.call('HINCRBY', KEYS[1], channel, -1) <= 0 then
    redis.call('HDEL', KEYS[1], channel)
    vacated[#vacated + 1] = channel
  end
end
redis.call('DEL', KEYS[3])
redis.call('ZREM', KEYS[2], ARGV[1])
return vacated
"""
)

__all__ = [
    "ADD_PRESENCE",
    "CONTROL",
    "CONTROL_MESSAGE",
    "NODES_KEY",
    "HISTORY",
    "LEASE",
    "LEASES_KEY",
    "OCCUPANCY_KEY",
    "OCCUPY",
    "PRESENCE",
    "PUBLISH",
    "REAP",
    "SPUBLISH",
    "VACATE",
    "decode_client",
    "decode_history",
    "decode_node",
    "decode_presence",
    "decode_publication",
    "decode_user_disconnect",
    "decode_user_message",
    "encode_client",
    "encode_presence",
    "encode_user_disconnect",
    "encode_user_message",
    "history_key",
    "meta_key",
    "node_key",
    "presence_key",
    "pubsub_name",
    "pubsub_suffix",
    "user_field",
]
