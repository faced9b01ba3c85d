import type { DescEnum, DescExtension, DescFile, DescMessage, DescService } from "@bufbuild/protobuf";
import { toBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";

/**
 * What server reflection can look up: every file reachable from the served services (their
 * files and all transitive imports, e.g. google/protobuf/*, buf/validate), every symbol in
 * them, and every extension. Built once per server from the services' generated descriptors.
 */
export interface ReflectionIndex {
  /** Fully qualified names of the served services, sorted. */
  readonly services: readonly string[];
  /** Proto file name (e.g. "grpc/health/v1/health.proto") → file. */
  fileByName(name: string): DescFile | undefined;
  /** Fully qualified symbol (service, method, message, field, oneof, enum, enum value, extension) → defining file. */
  fileBySymbol(symbol: string): DescFile | undefined;
  /** Extension of `containingType` with `number` → defining file. */
  fileByExtension(containingType: string, number: number): DescFile | undefined;
  /** Extension numbers known for a message type; undefined when the type is unknown. */
  extensionNumbers(containingType: string): number[] | undefined;
  /**
   * Serialized FileDescriptorProtos of `file` and its transitive imports, file first,
   * skipping imports already in `sent` (which is updated), as grpc-go does per stream.
   */
  serializeWithDependencies(file: DescFile, sent: Set<string>): Uint8Array[];
}

/** The proto file name of a descriptor file ("a/b.proto"); protobuf-es keeps it in `proto.name`. */
export function protoFileName(file: DescFile): string {
  return file.proto.name;
}

/**
 * Builds the index over the files of `services`, the `extraFiles` (files no service imports,
 * e.g. the event payloads) and everything they import.
 */
export function createReflectionIndex(services: readonly DescService[], extraFiles: readonly DescFile[] = []): ReflectionIndex {
  const files = new Map<string, DescFile>();
  const symbols = new Map<string, DescFile>();
  const extensions = new Map<string, Map<number, DescFile>>();
  const messageTypes = new Set<string>();
  const serialized = new Map<string, Uint8Array>();

  const addExtension = (ext: DescExtension, file: DescFile) => {
    symbols.set(ext.typeName, file);
    let byNumber = extensions.get(ext.extendee.typeName);
    if (!byNumber) extensions.set(ext.extendee.typeName, (byNumber = new Map()));
    byNumber.set(ext.number, file);
  };
  const addEnum = (e: DescEnum, file: DescFile, scope: string) => {
    symbols.set(e.typeName, file);
    // Enum values live in the scope that contains the enum (protobuf's C++ scoping rule).
    for (const v of e.values) symbols.set(scope ? `${scope}.${v.name}` : v.name, file);
  };
  const addMessage = (m: DescMessage, file: DescFile) => {
    symbols.set(m.typeName, file);
    messageTypes.add(m.typeName);
    for (const f of m.fields) symbols.set(`${m.typeName}.${f.name}`, file);
    for (const o of m.oneofs) symbols.set(`${m.typeName}.${o.name}`, file);
    for (const n of m.nestedMessages) addMessage(n, file);
    for (const e of m.nestedEnums) addEnum(e, file, m.typeName);
    for (const x of m.nestedExtensions) addExtension(x, file);
  };
  const addFile = (file: DescFile) => {
    const name = protoFileName(file);
    if (files.has(name)) return;
    files.set(name, file);
    const pkg = file.proto.package;
    for (const m of file.messages) addMessage(m, file);
    for (const e of file.enums) addEnum(e, file, pkg);
    for (const x of file.extensions) addExtension(x, file);
    for (const s of file.services) {
      symbols.set(s.typeName, file);
      for (const m of s.methods) symbols.set(`${s.typeName}.${m.name}`, file);
    }
    for (const dep of file.dependencies) addFile(dep);
  };
  for (const s of services) addFile(s.file);
  for (const f of extraFiles) addFile(f);

  const bytesOf = (file: DescFile): Uint8Array => {
    const name = protoFileName(file);
    let bytes = serialized.get(name);
    if (!bytes) serialized.set(name, (bytes = toBinary(FileDescriptorProtoSchema, file.proto)));
    return bytes;
  };

  return {
    services: [...new Set(services.map((s) => s.typeName))].sort(),
    fileByName: (name) => files.get(name),
    fileBySymbol: (symbol) => symbols.get(symbol.replace(/^\./, "")),
    fileByExtension: (containingType, number) => extensions.get(containingType.replace(/^\./, ""))?.get(number),
    extensionNumbers(containingType) {
      const type = containingType.replace(/^\./, "");
      if (!messageTypes.has(type)) return undefined;
      return [...(extensions.get(type)?.keys() ?? [])].sort((a, b) => a - b);
    },
    serializeWithDependencies(file, sent) {
      const out: Uint8Array[] = [];
      const queue: DescFile[] = [file];
      const seenNow = new Set<string>();
      while (queue.length > 0) {
        const current = queue.shift()!;
        const name = protoFileName(current);
        if (seenNow.has(name)) continue;
        seenNow.add(name);
        // The requested file always goes out; its imports only once per stream.
        if (out.length === 0 || !sent.has(name)) {
          out.push(bytesOf(current));
          sent.add(name);
        }
        queue.push(...current.dependencies);
      }
      return out;
    },
  };
}
