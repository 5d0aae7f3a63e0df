"""``python -m examples.chat_app``: the web application on http://127.0.0.1:8000/."""

from __future__ import annotations

import argparse

from aiohttp import web

from examples.chat_app.settings import data_dir, database_path, hub_api_key
from examples.chat_app.store import Store
from examples.chat_app.web import ChatSite


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m examples.chat_app", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--hub-port", type=int, default=8080,
                        help="the hub's public port, where the page connects")
    parser.add_argument("--hub-api", default="http://127.0.0.1:8081",
                        help="the hub's HTTP API (its internal port)")
    args = parser.parse_args()
    directory = data_dir()
    site = ChatSite(Store(database_path(directory)), hub_port=args.hub_port,
                    hub_api=args.hub_api, api_key=hub_api_key(directory))
    web.run_app(site.app(), host=args.host, port=args.port,
                print=lambda _: print(f"chat app on http://{args.host}:{args.port}/", flush=True))


if __name__ == "__main__":
    main()
