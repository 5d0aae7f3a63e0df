"""In-process hooks for the JavaScript client's tests: rpc echoes the method and data."""


async def on_rpc(ctx, method, data):
    return {"data": {"method": method, "data": data, "user": ctx.user}}
