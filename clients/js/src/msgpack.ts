// MessagePack for the "msgpack" protocol, in a module of its own so that JSON users never load it.
export { decode, encode } from "@msgpack/msgpack";
