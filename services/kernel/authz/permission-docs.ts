import { NEXUS_SERVICES } from "./all-services.js";
import { PERMISSIONS, type Permission, procedureOf } from "./permissions.js";

/** Who a rule admits, in words (docs/security.md). */
export function describePermission(p: Permission | undefined): string {
  if (p === undefined) return "nobody (not in the table)";
  const feature = p.feature ? `, tenant needs \`${p.feature}\`` : "";
  switch (p.class) {
    case "public":
      return "no API key (the handler checks the credential: the key under test in the body, or an edge token)";
    case "authenticated":
      return "any valid key";
    case "platform":
      return "platform only";
    case "read":
    case "write":
    case "admin": {
      const role = p.class === "read" ? "viewer" : p.class === "write" ? "editor" : "admin";
      return `${role}+${p.platform ? " or platform" : ""}${feature}`;
    }
    default: {
      const _exhaustive: never = p.class;
      return _exhaustive;
    }
  }
}

/** The permission table as Markdown, one row per RPC in descriptor order (docs/security.md). */
export function permissionTableMarkdown(): string {
  const rows = NEXUS_SERVICES.flatMap((s) =>
    s.methods.map((m) => {
      const procedure = procedureOf(s.typeName, m.name);
      const p = PERMISSIONS[procedure];
      return `| \`${s.name}/${m.name}\` | ${p?.class ?? "-"} | ${describePermission(p)} |`;
    }),
  );
  return ["| RPC | Class | Who may call it |", "|---|---|---|", ...rows].join("\n");
}
