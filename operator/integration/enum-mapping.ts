import { FieldType } from "../../gen/nexus/integration/v1/resources_pb.js";
import type { FIELD_TYPES } from "../crds/sender-app-crd.js";

/** A field type as the CRDs spell it (SenderApp fields, Workflow SQL mappings) → Nexus `FieldType`. */
export const FIELD_TYPE: Record<(typeof FIELD_TYPES)[number], FieldType> = {
  String: FieldType.STRING,
  Integer: FieldType.INTEGER,
  Number: FieldType.NUMBER,
  Boolean: FieldType.BOOLEAN,
  Timestamp: FieldType.TIMESTAMP,
  Json: FieldType.JSON,
};
