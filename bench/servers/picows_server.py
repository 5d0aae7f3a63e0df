"""picows in its documented style: a WSListener per connection that replies with transport.send."""

import argparse

from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_create_server

from bench.servers import _common

CONNECTIONS: set[WSTransport] = set()


class EchoListener(WSListener):
    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code())
            transport.disconnect()
            return
        transport.send(frame.msg_type, frame.get_payload_as_memoryview(), frame.fin)


class BroadcastListener(WSListener):
    def on_ws_connected(self, transport: WSTransport) -> None:
        CONNECTIONS.add(transport)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        CONNECTIONS.discard(transport)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code())
            transport.disconnect()
        elif frame.msg_type == WSMsgType.TEXT:
            command = _common.parse_broadcast_command(frame.get_payload_as_ascii_text())
            if command:
                count, payload = command
                others = [other for other in CONNECTIONS if other is not transport]
                for _ in range(count):
                    for other in others:
                        other.send(WSMsgType.BINARY, payload)


async def main(args: argparse.Namespace) -> None:
    listener = EchoListener if args.mode == "echo" else BroadcastListener
    server = await ws_create_server(
        lambda _request: listener(),
        args.host,
        args.port,
        backlog=_common.BACKLOG,
        ssl=_common.server_ssl_context(args),
    )
    _common.announce_ready(_common.bound_port(server.sockets))
    await _common.serve_until_cancelled()


if __name__ == "__main__":
    _common.run(main, __doc__)
