import type { DescMessage, MessageShape } from "@bufbuild/protobuf";
import { create, fromBinary, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";

/**
 * Calls a unary method with @grpc/grpc-js (the reference Node gRPC client, a different
 * implementation from ours) using protobuf-es schemas for (de)serialisation.
 */
export function grpcUnary<I extends DescMessage, O extends DescMessage>(
  address: string,
  path: string,
  input: I,
  output: O,
  request: MessageInitShape<I>,
  metadata?: Record<string, string>,
): Promise<MessageShape<O>> {
  const client = new grpc.Client(address, grpc.credentials.createInsecure());
  const md = new grpc.Metadata();
  for (const [k, v] of Object.entries(metadata ?? {})) md.set(k, v);
  return new Promise<MessageShape<O>>((resolve, reject) => {
    client.makeUnaryRequest(
      path,
      (msg: MessageShape<I>) => Buffer.from(toBinary(input, msg)),
      (buf: Buffer) => fromBinary(output, buf),
      create(input, request),
      md,
      { deadline: Date.now() + 10_000 },
      (err, res) => {
        client.close();
        if (err) reject(err);
        else resolve(res as MessageShape<O>);
      },
    );
  });
}

/** Opens a bidi stream, writes every request, ends, and collects the responses. */
export function grpcBidi<I extends DescMessage, O extends DescMessage>(
  address: string,
  path: string,
  input: I,
  output: O,
  requests: MessageInitShape<I>[],
): Promise<MessageShape<O>[]> {
  const client = new grpc.Client(address, grpc.credentials.createInsecure());
  return new Promise<MessageShape<O>[]>((resolve, reject) => {
    const call = client.makeBidiStreamRequest(
      path,
      (msg: MessageShape<I>) => Buffer.from(toBinary(input, msg)),
      (buf: Buffer) => fromBinary(output, buf),
      new grpc.Metadata(),
      { deadline: Date.now() + 10_000 },
    );
    const out: MessageShape<O>[] = [];
    call.on("data", (m: MessageShape<O>) => out.push(m));
    call.on("error", (e) => {
      client.close();
      reject(e);
    });
    call.on("end", () => {
      client.close();
      resolve(out);
    });
    for (const r of requests) call.write(create(input, r));
    call.end();
  });
}

/** What {@link grpcServerStream} saw: every message, the response headers and the final status. */
export interface ServerStreamResult<M> {
  messages: M[];
  headers: grpc.Metadata;
  status: grpc.StatusObject;
}

/** Options of {@link grpcServerStream}. */
export interface ServerStreamOptions<M> {
  metadata?: Record<string, string>;
  /** Deadline from now. Default 30 s. */
  deadlineMs?: number;
  /** Called for each message as it arrives; may cancel the call (`call.cancel()`). */
  onMessage?: (message: M, call: grpc.ClientReadableStream<M>) => void;
}

/**
 * Calls a server-streaming method with @grpc/grpc-js and collects what arrives. Resolves
 * with the status even when the call fails or is cancelled (errors are data here, so tests
 * can assert on codes).
 */
export function grpcServerStream<I extends DescMessage, O extends DescMessage>(
  address: string,
  path: string,
  input: I,
  output: O,
  request: MessageInitShape<I>,
  options: ServerStreamOptions<MessageShape<O>> = {},
): Promise<ServerStreamResult<MessageShape<O>>> {
  const client = new grpc.Client(address, grpc.credentials.createInsecure());
  const md = new grpc.Metadata();
  for (const [k, v] of Object.entries(options.metadata ?? {})) md.set(k, v);
  return new Promise((resolve) => {
    const messages: MessageShape<O>[] = [];
    let headers = new grpc.Metadata();
    const call = client.makeServerStreamRequest(
      path,
      (msg: MessageShape<I>) => Buffer.from(toBinary(input, msg)),
      (buf: Buffer) => fromBinary(output, buf),
      create(input, request),
      md,
      { deadline: Date.now() + (options.deadlineMs ?? 30_000) },
    );
    call.on("metadata", (m: grpc.Metadata) => (headers = m));
    call.on("data", (m: MessageShape<O>) => {
      messages.push(m);
      options.onMessage?.(m, call);
    });
    // 'error' carries the status of failed calls; 'status' also fires. Keep the first.
    call.on("error", () => {});
    call.on("status", (status: grpc.StatusObject) => {
      client.close();
      resolve({ messages, headers, status });
    });
  });
}
