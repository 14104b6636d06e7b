// A frontend's first calls, typed by the client generated from the API's /openapi.json:
// openapi-typescript turns the document into `paths`, openapi-fetch calls it. tests/test_openapi_client.py
// generates ./generated/openapi.d.ts from the app and type-checks this file with `tsc --noEmit`.
import createClient from "openapi-fetch";
import type { paths } from "./generated/openapi";

const api = createClient<paths>({ baseUrl: "http://localhost:8000" });

type ListPosts = paths["/api/v1/boards/{board_id}/posts"]["get"];
type ErrorOf<Operation, Status extends keyof Responses<Operation>> =
  Responses<Operation>[Status] extends { content: { "application/json": infer Body } } ? Body : never;
type Responses<Operation> = Operation extends { responses: infer R } ? R : never;
type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;

// Each answer's `code` is a closed union, read from the document, not a string.
export const forbiddenCodes: Equal<ErrorOf<ListPosts, 403>["code"], "banned" | "no_board_access"> = true;
export const missingCodes: Equal<ErrorOf<ListPosts, 404>["code"], "not_found"> = true;
// @ts-expect-error: "post_not_found" is no code of this answer (a missing board is `not_found`)
export const notACode: ErrorOf<ListPosts, 404>["code"] = "post_not_found";

function unexpected(value: never): never {
  throw new Error(`an answer the document does not list: ${JSON.stringify(value)}`);
}

/** Signs in; the access token, or what to tell the person. */
export async function signIn(name: string, password: string): Promise<{ token: string } | { problem: string }> {
  const { data, error, response } = await api.POST("/api/v1/auth/login", {
    body: { username: name, password },
    bodySerializer: (form) => new URLSearchParams({ username: form.username, password: form.password }),
  });
  if (data) {
    return { token: data.access_token };
  }
  // Every code the login can answer, and no other: a new one would not compile here.
  switch (error.code) {
    case "invalid_credentials":
      return { problem: "Wrong name, email or password." };
    case "banned":
      return { problem: "This account is banned." };
    case "rate_limited":
      return { problem: `Too many tries; wait ${response.headers.get("Retry-After") ?? "a while"} s.` };
    case "invalid_input":
      return { problem: error.detail.map((issue) => `${issue.loc.join(".")}: ${issue.msg}`).join("; ") };
    case "bad_request":
    case "payload_too_large":
      return { problem: error.detail };
    default:
      return unexpected(error);
  }
}

/** The titles of a board's first posts, or why there are none to show. */
export async function firstPosts(token: string, boardId: number): Promise<string[] | string> {
  const { data, error } = await api.GET("/api/v1/boards/{board_id}/posts", {
    params: { path: { board_id: boardId }, query: { sort: "latest", limit: 20 } },
    headers: { Authorization: `Bearer ${token}` },
  });
  if (data) {
    return data.items.map((post) => post.name);
  }
  switch (error.code) {
    case "not_authenticated":
    case "invalid_token":
    case "token_expired":
    case "token_revoked":
      return "Please sign in again.";
    case "banned":
      return "This account is banned.";
    case "no_board_access":
      return "This board is for its members.";
    case "not_found":
      return "No such board.";
    case "invalid_input":
      return error.detail[0]?.msg ?? "Invalid request.";
    default:
      return unexpected(error);
  }
}
