import type { DescFile } from "@bufbuild/protobuf";
import { file_nexus_events_v1_agent_events } from "../../../gen/nexus/events/v1/agent_events_pb.js";
import { file_nexus_events_v1_auth_events } from "../../../gen/nexus/events/v1/auth_events_pb.js";
import { file_nexus_events_v1_envelope } from "../../../gen/nexus/events/v1/envelope_pb.js";
import { file_nexus_events_v1_eventstore_events } from "../../../gen/nexus/events/v1/eventstore_events_pb.js";
import { file_nexus_events_v1_ingestion_events } from "../../../gen/nexus/events/v1/ingestion_events_pb.js";
import { file_nexus_events_v1_metering_events } from "../../../gen/nexus/events/v1/metering_events_pb.js";
import { file_nexus_events_v1_retrieval_events } from "../../../gen/nexus/events/v1/retrieval_events_pb.js";
import { file_nexus_sagas_v1_saga_events } from "../../../gen/nexus/sagas/v1/saga_events_pb.js";

/**
 * The files declaring Nexus's event payloads (one per domain): what ListEventTypes catalogues
 * and what gRPC reflection serves beside the APIs, so consumers in any language can decode
 * stored and published events.
 */
export const EVENT_PAYLOAD_FILES: readonly DescFile[] = [
  file_nexus_events_v1_auth_events,
  file_nexus_events_v1_metering_events,
  file_nexus_events_v1_ingestion_events,
  file_nexus_events_v1_retrieval_events,
  file_nexus_events_v1_agent_events,
  file_nexus_events_v1_eventstore_events,
  // Sagas' streams (package nexus.sagas.v1: the type names their events were stored under).
  file_nexus_sagas_v1_saga_events,
];

/** {@link EVENT_PAYLOAD_FILES} and the envelope. */
export const EVENT_FILES: readonly DescFile[] = [file_nexus_events_v1_envelope, ...EVENT_PAYLOAD_FILES];
