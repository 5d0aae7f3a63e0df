"""Hooks that cannot authenticate anyone: a hub without a token key refuses them."""


async def on_rpc(ctx, method, data):
    return {"data": None}
