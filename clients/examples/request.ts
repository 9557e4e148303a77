// A minimal typed client for careteam's GraphQL API, for illustration: any GraphQL client
// that accepts typed document nodes (urql, Apollo Client, graphql-request) works the same.
// `npm run typecheck` compiles this file against the generated types, so it also shows that
// a portal's code narrows each result union on __typename.
import type { TypedDocumentNode } from "@graphql-typed-document-node/core";
import { print } from "graphql";

import {
  CaseloadDocument,
  LogContactDocument,
  RespondToRecommendationDocument,
  type LogContactMutation,
} from "../generated/graphql";

/** An HL7 PurposeOfUse code such as TREAT; optional, the server defaults it per role. */
export type PurposeOfUse = string;

export interface Session {
  /** e.g. https://careteam.example.org/graphql */
  endpoint: string;
  /** The OIDC access token (a JWT) of the signed-in clinician. */
  token: string;
  /** Sent as X-Purpose-Of-Use when given. */
  purposeOfUse?: PurposeOfUse;
}

/** Sends one operation; GraphQL `errors` (bad token, masked failures) throw, typed errors return. */
export async function request<Result, Variables>(
  session: Session,
  document: TypedDocumentNode<Result, Variables>,
  variables: Variables,
): Promise<Result> {
  const headers: Record<string, string> = {
    "Content-Type": "application/json",
    Authorization: `Bearer ${session.token}`,
  };
  if (session.purposeOfUse) headers["X-Purpose-Of-Use"] = session.purposeOfUse;
  const response = await fetch(session.endpoint, {
    method: "POST",
    headers,
    body: JSON.stringify({ query: print(document), variables }),
  });
  const body = (await response.json()) as { data?: Result; errors?: { message: string }[] };
  if (!response.ok || body.errors?.length || body.data === undefined) {
    throw new Error(body.errors?.map((e) => e.message).join("; ") ?? `HTTP ${response.status}`);
  }
  return body.data;
}

/** What a form shows: the payload, or the typed error's message (and field, for validation). */
export function describe(result: LogContactMutation["logContact"]): string {
  switch (result.__typename) {
    case "PatientPayload":
      return `logged; ${result.patient.minutesTotal} minutes in total`;
    case "ValidationError":
      return `fix ${result.field ?? "the input"}: ${result.message}`;
    case "ConflictError":
      return `someone else changed the record; reload and retry (${result.code})`;
    case "InvalidTransitionError":
    case "NotAllowedError":
    case "NotFoundError":
    case "ForbiddenError":
      return `${result.code}: ${result.message}`;
  }
}

/** A care manager's morning, typed end to end. */
export async function morning(session: Session, patientId: string): Promise<string[]> {
  const page = await request(session, CaseloadDocument, { first: 25 });
  const flagged = page.caseload.edges.filter((edge) => edge.node.flagged);
  const logged = await request(session, LogContactDocument, {
    input: { patientId, activityKind: "CONTACT", minutes: 15, modalityKind: "PHONE" },
  });
  return [...flagged.map((edge) => edge.node.patientId), describe(logged.logContact)];
}

// The PCP declines a recommendation: the reason is required (a ValidationError otherwise).
export const decline = (session: Session, consultationNoteId: string, recommendationId: string) =>
  request(session, RespondToRecommendationDocument, {
    input: { consultationNoteId, recommendationId, response: "DECLINED", text: "Already tried." },
  });
