/** An error the hub answered with, or one of the client's own (timeouts, disconnections). */
export class HubError extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(`${message} (${code})`);
    this.name = "HubError";
  }
}

/** No reply within the command timeout, connection wait included (code 408). */
export class CommandTimeout extends HubError {
  constructor(method: string, timeout: number) {
    super(408, `no reply to ${method} within ${timeout} ms`);
    this.name = "CommandTimeout";
  }
}

/** The connection ended before the command completed; `code` is the close code. */
export class Disconnected extends HubError {
  constructor(
    code: number,
    readonly reason: string,
    readonly reconnect = true,
  ) {
    super(code, reason || "disconnected");
    this.name = "Disconnected";
  }
}
