import { create, type DescFile, toBinary } from "@bufbuild/protobuf";
import { FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import { EVENT_PAYLOAD_FILES } from "../kernel/events/event-files.js";
import { currentSchemaVersion, registeredUpcasters } from "../kernel/events/index.js";
import { registeredTopic, topicFromProtoFile } from "../kernel/events/topics.js";

/** One entry of the event catalogue. */
export interface EventTypeInfo {
  typeName: string;
  topic: string;
  schemaVersion: number;
  upcastFromVersions: number[];
  protoFile: string;
}

/**
 * The event catalogue: every top-level message of the event files that has a topic (its
 * registered one, else the one its file implies), with its shape version and the versions
 * upcasters still upgrade, sorted by name.
 */
export function eventCatalogue(): EventTypeInfo[] {
  const upcasters = registeredUpcasters();
  const out: EventTypeInfo[] = [];
  for (const file of EVENT_PAYLOAD_FILES) {
    for (const message of file.messages) {
      const topic = registeredTopic(message.typeName) ?? topicFromProtoFile(message.name, file.name);
      if (topic === undefined) continue;
      out.push({
        typeName: message.typeName,
        topic,
        schemaVersion: currentSchemaVersion(message.typeName),
        upcastFromVersions: upcasters
          .filter((u) => (u.toType ?? u.type) === message.typeName || u.type === message.typeName)
          .map((u) => u.fromVersion)
          .sort((a, b) => a - b),
        protoFile: `${file.name}.proto`,
      });
    }
  }
  return out.sort((a, b) => a.typeName.localeCompare(b.typeName));
}

/** The event files and every file they import, dependencies first, as a serialized FileDescriptorSet. */
export function eventDescriptorSet(): Uint8Array {
  const ordered: DescFile[] = [];
  const seen = new Set<string>();
  const visit = (f: DescFile) => {
    if (seen.has(f.name)) return;
    seen.add(f.name);
    for (const d of f.dependencies) visit(d);
    ordered.push(f);
  };
  for (const f of EVENT_PAYLOAD_FILES) visit(f);
  return toBinary(FileDescriptorSetSchema, create(FileDescriptorSetSchema, { file: ordered.map((f) => f.proto) }));
}
