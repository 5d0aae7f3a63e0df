/** The two encodings of the hub protocol, as subprotocol name, frame type and functions. */
export interface Codec {
  readonly subprotocol: string;
  readonly binary: boolean;
  encode(message: unknown): string | Uint8Array;
  decode(data: string | ArrayBuffer): any;
}

export type Protocol = "json" | "msgpack";

const json: Codec = {
  subprotocol: "fastws.json",
  binary: false,
  encode: (message) => JSON.stringify(message),
  decode: (data) => JSON.parse(typeof data === "string" ? data : new TextDecoder().decode(data)),
};

/** The codec of `protocol`; MessagePack's module is loaded on the first call that asks for it. */
export async function loadCodec(protocol: Protocol): Promise<Codec> {
  if (protocol === "json") return json;
  if (protocol !== "msgpack") throw new TypeError(`protocol must be "json" or "msgpack", not ${protocol}`);
  const { encode, decode } = await import("./msgpack.js");
  return {
    subprotocol: "fastws.msgpack",
    binary: true,
    encode: (message) => encode(message),
    decode: (data) => decode(data as ArrayBuffer),
  };
}
