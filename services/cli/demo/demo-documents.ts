/**
 * The demo corpus `nexus dev` seeds on its first start: a few short Markdown documents about
 * Nexus itself, so a newcomer's first `nexus ask "How do I rotate an API key?"` answers from
 * real documents with citations. Kept as TypeScript strings so they ship inside dist/.
 * Each sentence should stand on its own: the extractive provider quotes sentences.
 */

/** One demo document. */
export interface DemoDocument {
  /** Stable document id (re-seeding the same text is a no-op). */
  id: string;
  filename: string;
  text: string;
}

const GETTING_STARTED = `# Getting started with Nexus

Nexus is a multi-tenant platform for retrieval-augmented agents: you ingest documents into a corpus, and agents answer questions from them with citations.

## Start Nexus

Run \`nexus dev\` to start every service in one process with an embedded database; nothing else needs to be installed.
On its first start, \`nexus dev\` prints a platform operator key and the owner key of the demo tenant, once.
Store the keys when they are printed: Nexus keeps only their hashes, so they cannot be shown again.

## Call the API

Export the owner key as NEXUS_API_KEY so the \`nexus\` commands can use it.
Run \`nexus whoami\` to check which tenant, role and plan your key belongs to.
Every service speaks gRPC, gRPC-Web and Connect on one port, so curl, grpcurl and any gRPC client work.
`;

const INGESTING = `# Ingesting documents

A corpus is a named collection of documents that are searched together.
Create a corpus with \`nexus corpora create\`, giving it an id such as handbook.
To ingest documents, run \`nexus ingest <files or folders> --corpus <corpus id>\`: each file shows a progress bar until it is ingested or fails.
Nexus reads plain text, Markdown, HTML, JSON, PDF and DOCX files.

## The document lifecycle

An ingested document moves from queued to processing to succeeded, or to failed with a failure reason.
Nexus splits each document into chunks of about 1,200 characters that keep sentences and paragraphs together.
Every chunk records its character offsets, so answers can cite the exact span they quote.
Ingesting the same document id with the same content again changes nothing; pass overwrite to replace a document's content.
List the documents of a corpus with \`nexus docs list\`, and remove one with \`nexus docs delete\`.
`;

const ASKING = `# Asking questions

To ask a question, run \`nexus ask "your question" --corpus <corpus id>\`: the answer streams as it is generated, followed by its citations.
Without --corpus, \`nexus ask\` uses the demo corpus nexus-docs.
Each citation names the document, the chunk and the character span of the quoted text.
To continue a conversation, pass the session id that \`nexus ask\` prints with --session.
List your sessions with \`nexus sessions list\` and read one with \`nexus sessions get <session id>\`.

## Model providers

The extractive provider is the default: it answers offline by quoting the most relevant sentences of the retrieved passages, and says it does not know when nothing relevant was found.
The openai provider sends the question and the retrieved passages to any OpenAI-compatible Chat Completions server, such as OpenAI, vLLM, Ollama or llama.cpp.
To enable the openai provider, set NEXUS_OPENAI_BASE_URL, NEXUS_OPENAI_MODEL and NEXUS_OPENAI_API_KEY.
Choose a provider for one question with --provider, or for a whole corpus in its provider_config.
`;

const API_KEYS = `# Managing API keys

API keys authenticate every call to Nexus, and each tenant key carries a role: owner, admin, editor or viewer.
Create a key with \`nexus keys create --name <name> --role <role>\`; the key is printed once.

## Rotating an API key

To rotate an API key, run \`nexus keys rotate <key id>\`: Nexus prints a new key and the old key keeps working during the grace period.
The grace period of a rotation is 24 hours unless you pass --grace, for example --grace 1h.
Switch your clients to the new key before the grace period ends, because the old key stops working then.

## Revoking an API key

To revoke a key at once, run \`nexus keys revoke <key id>\`; calls with a revoked key are refused immediately.
List your tenant's keys and their status with \`nexus keys list\`.
`;

const QUOTAS = `# Quotas and usage

Quotas limit how many runs a tenant may start per day and per month, and how many run units it may use.
A run's units are its CPU or GPU seconds times the plan's multiplier, plus a small overhead per tool call.

## Setting quotas

Platform operators set a tenant's quotas with \`nexus quota set --tenant <tenant> --daily-runs <n> --monthly-runs <n>\`.
Limits that are not set fall back to the defaults of the tenant's plan.
At 80 percent of a limit the tenant reaches its soft cap, which Nexus reports once per period.
In enforce mode, a run over the hard limit is refused with RESOURCE_EXHAUSTED and the reason QUOTA_EXCEEDED.
In observe mode, runs over the limit go through and an overage is recorded instead.

## Checking usage

Tenant admins see their usage with \`nexus usage\` and their quota with \`nexus quota get\`.
`;

/** The demo documents. */
export const DEMO_DOCUMENTS: readonly DemoDocument[] = Object.freeze([
  { id: "getting-started", filename: "getting-started.md", text: GETTING_STARTED },
  { id: "ingesting-documents", filename: "ingesting-documents.md", text: INGESTING },
  { id: "asking-questions", filename: "asking-questions.md", text: ASKING },
  { id: "api-keys", filename: "api-keys.md", text: API_KEYS },
  { id: "quotas", filename: "quotas.md", text: QUOTAS },
]);
