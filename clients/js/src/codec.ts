/** The three encodings of the hub protocol, as subprotocol name, frame type and functions. */
export interface Codec {
  readonly subprotocol: string;
  readonly binary: boolean;
  encode(message: unknown): string | Uint8Array;
  decode(data: string | ArrayBuffer): any;
}

export type Protocol = "json" | "msgpack" | "protobuf";

const json: Codec = {
  subprotocol: "fastws.json",
  binary: false,
  encode: (message) => JSON.stringify(message),
  decode: (data) => JSON.parse(typeof data === "string" ? data : new TextDecoder().decode(data)),
};

/**
 * The codec of `protocol`; the MessagePack and Protobuf modules are loaded on the first call
 * that asks for them.
 */
export async function loadCodec(protocol: Protocol): Promise<Codec> {
  if (protocol === "json") return json;
  if (protocol === "protobuf") {
    const { encode, decode } = await import("./protobuf.js");
    return {
      subprotocol: "fastws.protobuf",
      binary: true,
      encode: (message) => encode(message as any),
      decode: (data) => decode(data as ArrayBuffer),
    };
  }
  if (protocol !== "msgpack") {
    throw new TypeError(`protocol must be "json", "msgpack" or "protobuf", not ${protocol}`);
  }
  const { encode, decode } = await import("./msgpack.js");
  return {
    subprotocol: "fastws.msgpack",
    binary: true,
    encode: (message) => encode(message),
    decode: (data) => decode(data as ArrayBuffer),
  };
}

/**
 * The data field of a command: binary data (a Uint8Array) travels as base64 `b64data` over
 * JSON, which has no bytes; the other encodings carry it as it is.
 */
export function dataField(codec: Codec | undefined, data: unknown): Record<string, unknown> {
  if (data instanceof Uint8Array && codec?.binary === false) return { b64data: toBase64(data) };
  return { data };
}

/** The data of a push or publication item, whatever the encoding: binary data as a Uint8Array. */
export function receivedData(item: any): unknown {
  return item.b64data === undefined ? item.data : fromBase64(item.b64data);
}

function toBase64(bytes: Uint8Array): string {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

function fromBase64(text: string): Uint8Array {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}
