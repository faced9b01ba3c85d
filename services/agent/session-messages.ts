import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import {
  CitationSchema,
  type Message,
  MessageRole,
  MessageSchema,
  type Session,
  SessionSchema,
} from "../../gen/nexus/agent/v1/session_pb.js";
import type { MessageRecord, SessionRecord } from "./sessions/session-records.js";

/** A stored session as the API's Session. */
export function sessionMessage(s: SessionRecord): Session {
  return create(SessionSchema, {
    id: s.sessionId,
    tenantId: s.tenantId,
    corpusId: s.corpusId,
    title: s.title,
    messageCount: s.messageCount,
    createdAt: timestampFromDate(s.createdAt),
    updatedAt: timestampFromDate(s.updatedAt),
  });
}

/** A stored message as the API's Message. */
export function messageMessage(m: MessageRecord): Message {
  return create(MessageSchema, {
    id: m.messageId,
    sessionId: m.sessionId,
    role: m.role === "user" ? MessageRole.USER : MessageRole.ASSISTANT,
    text: m.text,
    citations: m.citations.map((c) => create(CitationSchema, c)),
    requestId: m.requestId,
    createdAt: timestampFromDate(m.createdAt),
  });
}
