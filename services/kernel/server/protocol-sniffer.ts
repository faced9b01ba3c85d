import type { Socket } from "node:net";

/** The HTTP/2 connection preface a cleartext (prior-knowledge) HTTP/2 client sends first. */
export const HTTP2_PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");

/** Which server a connection belongs to. */
export type WireProtocol = "http1" | "http2";

/**
 * Decides the protocol from the bytes received so far: "http2" once the full preface
 * arrived, "http1" as soon as the bytes diverge from it (HTTP/1 methods differ from "PRI *"
 * within the first few bytes), undefined while every byte so far matches the preface.
 */
export function detectProtocol(head: Buffer): WireProtocol | undefined {
  const n = Math.min(head.length, HTTP2_PREFACE.length);
  if (!head.subarray(0, n).equals(HTTP2_PREFACE.subarray(0, n))) return "http1";
  return n === HTTP2_PREFACE.length ? "http2" : undefined;
}

/** Options of {@link sniffProtocol}. */
export interface SniffOptions {
  /** Give up on a connection that sends nothing decisive for this long; default 10 s. */
  timeoutMs?: number;
}

/**
 * Node has no cleartext HTTP/2 server that also speaks HTTP/1.1 (nodejs/node#44887), so one
 * port serves both by looking at the first bytes of each connection: reads until the
 * protocol is clear (however the first packet is split or pipelined), puts every byte read
 * back into the socket, and hands it on. An HTTP/2 session reads the buffered bytes itself
 * (the socket must stay paused); the HTTP/1 parser needs it flowing again.
 */
export function sniffProtocol(socket: Socket, handoff: (protocol: WireProtocol, socket: Socket) => void, options: SniffOptions = {}): void {
  const chunks: Buffer[] = [];
  const cleanup = () => {
    socket.removeListener("data", onData);
    socket.removeListener("end", onEnd);
    socket.removeListener("timeout", onTimeout);
    socket.setTimeout(0);
  };
  const onData = (chunk: Buffer) => {
    chunks.push(chunk);
    const head = chunks.length === 1 ? chunk : Buffer.concat(chunks);
    const protocol = detectProtocol(head);
    if (protocol === undefined) return;
    cleanup();
    socket.pause();
    socket.unshift(head);
    handoff(protocol, socket);
    if (protocol === "http1") socket.resume();
  };
  const onEnd = () => {
    cleanup();
    socket.destroy();
  };
  const onTimeout = () => {
    cleanup();
    socket.destroy();
  };
  socket.on("data", onData);
  socket.once("end", onEnd);
  socket.on("timeout", onTimeout);
  socket.setTimeout(options.timeoutMs ?? 10_000);
}
