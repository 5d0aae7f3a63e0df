// Protobuf for the "protobuf" protocol: the hub's schema (fastws/hub/protocol/hub.proto) by
// hand, without a dependency. A client writes `Command` and reads `Reply`, through the same
// object shapes as JSON: `{id, method, params}` out; `{id, result}`, `{id?, error}` or
// `{push, ...}` in. `data` is a Uint8Array for binary data, any other value for JSON.

type Kind = "uint" | "bool" | "string" | "data" | "json" | "message" | "repeated" | "map";
/** A message's fields: name -> [field number, kind, message type, optional]. */
type Schema = Record<string, [number, Kind, string?, boolean?]>;

/** Exported for the test that compares it with hub.proto. */
export const SCHEMAS: Record<string, Schema> = {
  Reply: {
    id: [1, "uint"], error: [2, "message", "Error", true], push: [3, "message", "Push", true],
    connect: [4, "message", "ConnectResult", true], subscribe: [5, "message", "SubscribeResult", true],
    unsubscribe: [6, "message", "Empty", true], publish: [7, "message", "PublishResult", true],
    send: [8, "message", "Empty", true], presence: [9, "message", "PresenceResult", true],
    history: [10, "message", "HistoryResult", true], ping: [11, "message", "Empty", true],
    refresh: [12, "message", "Empty", true], sub_refresh: [13, "message", "Empty", true],
    rpc: [14, "message", "RpcResult", true],
  },
  Error: { code: [1, "uint"], message: [2, "string"] },
  StreamPosition: { offset: [1, "uint"], epoch: [2, "string"] },
  PublicationInfo: { user: [1, "string"] },
  Publication: { offset: [1, "uint"], data: [2, "data"], info: [4, "message", "PublicationInfo", true] },
  ClientInfo: { client: [1, "string"], user: [2, "string"], info: [3, "json", undefined, true] },
  ConnectRequest: { token: [1, "string", undefined, true], subs: [2, "map", "StreamPosition"] },
  SubscribeRequest: {
    channel: [1, "string"], since: [2, "message", "StreamPosition", true], token: [3, "string", undefined, true],
    data: [4, "data", undefined, true],
  },
  RefreshRequest: { token: [1, "string"] },
  SubRefreshRequest: { channel: [1, "string"], token: [2, "string"] },
  UnsubscribeRequest: { channel: [1, "string"] },
  PublishRequest: { channel: [1, "string"], data: [2, "data"] },
  SendRequest: { user: [1, "string"], data: [2, "data"] },
  PresenceRequest: { channel: [1, "string"] },
  HistoryRequest: {
    channel: [1, "string"], since: [2, "message", "StreamPosition", true],
    limit: [3, "uint", undefined, true], reverse: [4, "bool"],
  },
  RpcRequest: { method: [1, "string"], data: [2, "data", undefined, true] },
  Empty: {},
  ConnectResult: { client: [1, "string"], user: [2, "string"], ping: [3, "uint"], data: [4, "data", undefined, true] },
  SubscribeResult: {
    epoch: [1, "string"], offset: [2, "uint"], recovered: [3, "bool"],
    publications: [4, "repeated", "Publication"], data: [5, "data", undefined, true],
  },
  RpcResult: { data: [1, "data", undefined, true] },
  PublishResult: { offset: [1, "uint"] },
  PresenceResult: { clients: [1, "map", "ClientInfo"] },
  HistoryResult: { epoch: [1, "string"], offset: [2, "uint"], publications: [3, "repeated", "Publication"] },
  Push: {
    pub: [1, "message", "PubPush", true], message: [2, "message", "MessagePush", true],
    join: [3, "message", "JoinLeavePush", true], leave: [4, "message", "JoinLeavePush", true],
    disconnect: [5, "message", "DisconnectPush", true], unsubscribe: [6, "message", "UnsubscribePush", true],
    subscribe: [7, "message", "SubscribePush", true],
  },
  SubscribePush: {
    channel: [1, "string"], epoch: [2, "string"], offset: [3, "uint"], recovered: [4, "bool"],
    publications: [5, "repeated", "Publication"],
  },
  PubPush: {
    channel: [1, "string"], offset: [2, "uint"], data: [3, "data"],
    info: [5, "message", "PublicationInfo", true],
  },
  MessagePush: { from: [1, "string", undefined, true], data: [2, "data"] },
  JoinLeavePush: { channel: [1, "string"], info: [2, "message", "ClientInfo", true] },
  UnsubscribePush: { channel: [1, "string"], reason: [2, "string"], code: [3, "uint"] },
  DisconnectPush: { code: [1, "uint"], reason: [2, "string"], reconnect: [3, "bool"] },
};

/** The request message and its field number in `Command`, per method. */
export const REQUESTS: Record<string, [number, string]> = {
  connect: [2, "ConnectRequest"], subscribe: [3, "SubscribeRequest"], unsubscribe: [4, "UnsubscribeRequest"],
  publish: [5, "PublishRequest"], send: [6, "SendRequest"], presence: [7, "PresenceRequest"],
  history: [8, "HistoryRequest"], ping: [9, "PingRequest"], refresh: [10, "RefreshRequest"],
  sub_refresh: [11, "SubRefreshRequest"], rpc: [12, "RpcRequest"],
};

const text = new TextEncoder();
const utf8 = new TextDecoder();

// -- writing ------------------------------------------------------------------------------

class Writer {
  private bytes: number[] = [];

  varint(value: number): void {
    let v = Math.floor(value);
    while (v >= 0x80) {
      this.bytes.push((v % 0x80) | 0x80);
      v = Math.floor(v / 0x80);
    }
    this.bytes.push(v);
  }

  tag(field: number, wireType: number): void {
    this.varint(field * 8 + wireType);
  }

  chunk(field: number, data: Uint8Array): void {
    this.tag(field, 2);
    this.varint(data.length);
    for (const byte of data) this.bytes.push(byte);
  }

  finish(): Uint8Array {
    return Uint8Array.from(this.bytes);
  }
}

function writeMessage(type: string, values: Record<string, any>): Uint8Array {
  const schema = SCHEMAS[type] ?? {};
  const out = new Writer();
  for (const [name, value] of Object.entries(values)) {
    const spec = schema[name];
    if (!spec) throw new TypeError(`${type} has no field ${name}`);
    if (value === undefined) continue;
    const [field, kind, sub] = spec;
    if (kind === "uint" || kind === "bool") {
      out.tag(field, 0);
      out.varint(Number(value));
    } else if (kind === "string") {
      out.chunk(field, text.encode(value));
    } else if (kind === "data") {
      const binary = value instanceof Uint8Array;
      out.chunk(field, binary ? value : text.encode(JSON.stringify(value)));
      if (!binary) {
        out.tag(field + 1, 0); // `json` follows `data` in every message that has both
        out.varint(1);
      }
    } else if (kind === "message") {
      out.chunk(field, writeMessage(sub!, value));
    } else if (kind === "map") {
      for (const [key, item] of Object.entries<Record<string, any>>(value)) {
        const entry = new Writer();
        entry.chunk(1, text.encode(key));
        entry.chunk(2, writeMessage(sub!, item));
        out.chunk(field, entry.finish());
      }
    } else {
      throw new TypeError(`a client does not send ${type}.${name}`);
    }
  }
  return out.finish();
}

/**
 * A command `{id, method, params}` as a `Command` message. A method the schema does not have
 * goes out without params, and the hub answers it with error 404 as over JSON.
 */
export function encode(command: { id: number; method: string; params?: Record<string, unknown> }): Uint8Array {
  const out = new Writer();
  out.tag(1, 0);
  out.varint(command.id);
  const request = REQUESTS[command.method];
  if (request) out.chunk(request[0], writeMessage(request[1], command.params ?? {}));
  return out.finish();
}

// -- reading ------------------------------------------------------------------------------

class Reader {
  pos = 0;
  constructor(private readonly bytes: Uint8Array, readonly end = bytes.length) {}

  varint(): number {
    let value = 0;
    let scale = 1;
    for (;;) {
      if (this.pos >= this.end) throw new RangeError("truncated protobuf varint");
      const byte = this.bytes[this.pos++];
      value += (byte & 0x7f) * scale;
      if (byte < 0x80) return value;
      scale *= 0x80;
    }
  }

  chunk(): Uint8Array {
    const length = this.varint();
    if (this.pos + length > this.end) throw new RangeError("truncated protobuf field");
    const data = this.bytes.subarray(this.pos, this.pos + length);
    this.pos += length;
    return data;
  }

  skip(wireType: number): void {
    if (wireType === 0) this.varint();
    else if (wireType === 2) this.chunk();
    else if (wireType === 1) this.pos += 8;
    else if (wireType === 5) this.pos += 4;
    else throw new RangeError(`unknown protobuf wire type ${wireType}`);
  }
}

function readMessage(type: string, bytes: Uint8Array): Record<string, any> {
  const schema = SCHEMAS[type];
  const byNumber = new Map<number, [string, Kind, string?]>();
  const values: Record<string, any> = {};
  let json = false;
  let data: Uint8Array | undefined;
  for (const [name, [field, kind, sub, optional]] of Object.entries(schema)) {
    byNumber.set(field, [name, kind, sub]);
    if (kind === "data") byNumber.set(field + 1, ["json", "bool"]);
    if (optional || kind === "message") continue;
    values[name] = kind === "uint" ? 0 : kind === "bool" ? false : kind === "string" ? "" : kind === "repeated" ? [] : kind === "map" ? {} : undefined;
  }
  const reader = new Reader(bytes);
  while (reader.pos < reader.end) {
    const key = reader.varint();
    const spec = byNumber.get(Math.floor(key / 8));
    if (!spec) {
      reader.skip(key & 7);
      continue;
    }
    const [name, kind, sub] = spec;
    if (name === "json") json = reader.varint() !== 0;
    else if (kind === "uint") values[name] = reader.varint();
    else if (kind === "bool") values[name] = reader.varint() !== 0;
    else if (kind === "string") values[name] = utf8.decode(reader.chunk());
    else if (kind === "data") data = reader.chunk();
    else if (kind === "json") values[name] = JSON.parse(utf8.decode(reader.chunk()));
    else if (kind === "message") values[name] = readMessage(sub!, reader.chunk());
    else if (kind === "repeated") values[name].push(readMessage(sub!, reader.chunk()));
    else if (kind === "map") {
      const entry = new Reader(reader.chunk());
      let mapKey = "";
      let mapValue: Record<string, any> = readMessage(sub!, new Uint8Array());
      while (entry.pos < entry.end) {
        const entryKey = entry.varint();
        if (entryKey === 0x0a) mapKey = utf8.decode(entry.chunk());
        else if (entryKey === 0x12) mapValue = readMessage(sub!, entry.chunk());
        else entry.skip(entryKey & 7);
      }
      values[name][mapKey] = mapValue;
    }
  }
  const dataSpec = Object.values(schema).find(([, kind]) => kind === "data");
  if (dataSpec && (data !== undefined || !dataSpec[3])) {
    const raw = data ?? new Uint8Array();
    values.data = json ? JSON.parse(utf8.decode(raw)) : raw.slice();
  }
  return values;
}

/** A `Reply` message as the object the JSON protocol would give. */
export function decode(buffer: ArrayBuffer | Uint8Array): any {
  const reply = readMessage("Reply", buffer instanceof Uint8Array ? buffer : new Uint8Array(buffer));
  if (reply.push) {
    const [kind] = Object.keys(reply.push);
    return kind === undefined ? {} : { push: kind, ...reply.push[kind] };
  }
  const message: Record<string, any> = {};
  if (reply.id) message.id = reply.id;
  if (reply.error) {
    message.error = reply.error;
    return message;
  }
  const method = Object.keys(REQUESTS).find((name) => reply[name] !== undefined);
  message.result = method === undefined ? {} : reply[method];
  return message;
}
