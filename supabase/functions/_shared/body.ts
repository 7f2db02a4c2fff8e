// Request bodies: read within the route's byte limit, parsed as JSON and checked against the route's
// schema from contract.json, which `./dev schema` generates from the Python service's own body Structs
// and limits. Every problem is a 400 (413 for size) whose message names the field first, in the
// service's words ("worker_id: Expected `str` of length <= 200").

import contract from "./contract.json" with { type: "json" };
import { HttpError } from "./http.ts";

export const LIMITS = contract.limits;

type Schema = {
  type?: string;
  anyOf?: Schema[];
  $ref?: string;
  properties?: Record<string, Schema>;
  required?: string[];
  additionalProperties?: boolean;
  minLength?: number;
  maxLength?: number;
  minimum?: number;
  maximum?: number;
  minItems?: number;
  maxItems?: number;
  items?: Schema;
  format?: string;
  enum?: string[];
};

const SCHEMAS = contract.schemas as unknown as Record<string, Schema>;
export type FunctionName = keyof typeof contract.functions;
export const FUNCTION_NAMES = Object.keys(contract.functions) as FunctionName[];
export type Body = Record<string, unknown>;

const UUID = /^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$/i;
const KIND: Record<string, string> = {
  string: "str",
  integer: "int",
  number: "float",
  boolean: "bool",
  null: "null",
  array: "array",
  object: "object",
};

/** The raw body, refused with 413 past the route's limit (by its Content-Length, or as it streams). */
export async function readBody(request: Request, name: FunctionName): Promise<string> {
  const limit = contract.functions[name].body_limit;
  const length = request.headers.get("content-length");
  if (length !== null) {
    if (!/^\d+$/.test(length)) throw new HttpError(400, "invalid Content-Length");
    if (Number(length) > limit) throw new HttpError(413, `body larger than ${limit} bytes`);
  }
  const chunks: Uint8Array[] = [];
  let size = 0;
  if (request.body) {
    for await (const chunk of request.body) {
      size += chunk.length;
      if (size > limit) throw new HttpError(413, `body larger than ${limit} bytes`);
      chunks.push(chunk);
    }
  }
  const bytes = new Uint8Array(size);
  let at = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, at);
    at += chunk.length;
  }
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new HttpError(400, "body is not valid JSON");
  }
}

/** ``raw`` as the route's body; an empty body is ``{}``, and a field set to null is one left out. */
export function decodeBody(name: FunctionName, raw: string): Body {
  let value: unknown;
  try {
    value = raw.trim() === "" ? {} : JSON.parse(raw);
  } catch {
    throw new HttpError(400, "body is not valid JSON");
  }
  const schema = SCHEMAS[contract.functions[name].body];
  check(schema, value, "");
  const body = value as Body;
  for (const [field, member] of Object.entries(body)) {
    if (member === null) delete body[field];
  }
  return body;
}

function fail(path: string, message: string): never {
  throw new HttpError(400, path ? `${path}: ${message}` : message);
}

function kindOf(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  if (typeof value === "number") return Number.isInteger(value) ? "int" : "float";
  if (typeof value === "string") return "str";
  if (typeof value === "boolean") return "bool";
  return "object";
}

function names(schema: Schema): string[] {
  if (schema.anyOf) return schema.anyOf.flatMap(names);
  if (schema.enum) return ["str"];
  if (schema.$ref) return ["object"];
  return [KIND[schema.type ?? "object"] ?? "object"];
}

function fits(schema: Schema, value: unknown): boolean {
  const kind = kindOf(value);
  if (schema.enum) return kind === "str";
  switch (schema.type) {
    case "string":
      return kind === "str";
    case "integer":
      return kind === "int";
    case "number":
      return kind === "int" || kind === "float";
    case "boolean":
      return kind === "bool";
    case "null":
      return kind === "null";
    case "array":
      return kind === "array";
    default:
      return kind === "object";
  }
}

function check(schema: Schema, value: unknown, path: string): void {
  const struct = schema.$ref?.split("/").pop();
  if (struct && struct !== "JsonValue" && struct !== "JsonObject" && SCHEMAS[struct]) {
    return check(SCHEMAS[struct], value, path); // a body nested in a body (complete-tasks' items)
  }
  if (schema.$ref) {
    const problem = jsonProblem(value);
    if (problem !== null) fail("", `${path} ${problem}`);
    if (schema.$ref.endsWith("/JsonObject") && kindOf(value) !== "object") {
      fail(path, `Expected \`object\`, got \`${kindOf(value)}\``);
    }
    return;
  }
  if (schema.anyOf) {
    const option = schema.anyOf.find((s) => s.$ref ? value !== null : fits(s, value));
    if (option === undefined) {
      if (value === null) return; // every anyOf here is "X or null"
      fail(path, `Expected \`${names(schema).join(" | ")}\`, got \`${kindOf(value)}\``);
    }
    return check(option, value, path);
  }
  if (schema.enum) {
    if (!schema.enum.includes(value as string)) {
      fail(path, `Invalid enum value '${String(value).slice(0, 50)}'`);
    }
    return;
  }
  if (!fits(schema, value)) fail(path, `Expected \`${names(schema)[0]}\`, got \`${kindOf(value)}\``);
  if (schema.type === "null" || schema.type === "boolean") return;
  if (schema.type === "string") return checkString(schema, value as string, path);
  if (schema.type === "integer" || schema.type === "number") {
    return checkNumber(schema, value as number, path);
  }
  if (schema.type === "array") {
    const items = value as unknown[];
    if (schema.minItems !== undefined && items.length < schema.minItems) {
      fail(path, `Expected \`array\` of length >= ${schema.minItems}`);
    }
    if (schema.maxItems !== undefined && items.length > schema.maxItems) {
      fail(path, `Expected \`array\` of length <= ${schema.maxItems}`);
    }
    items.forEach((item, i) => schema.items && check(schema.items, item, `${path}[${i}]`));
    return;
  }
  const object = value as Record<string, unknown>;
  for (const field of schema.required ?? []) {
    if (!(field in object)) fail(path, `Object missing required field \`${field}\``);
  }
  for (const [field, member] of Object.entries(object)) {
    const property = schema.properties?.[field];
    if (property === undefined) {
      if (schema.additionalProperties === false) {
        fail(path, `Object contains unknown field \`${field.slice(0, 50)}\``);
      }
      continue;
    }
    check(property, member, path ? `${path}.${field}` : field);
  }
}

function checkString(schema: Schema, value: string, path: string): void {
  if (schema.format === "uuid") {
    if (!UUID.test(value)) fail(path, "Invalid UUID");
    return;
  }
  const length = [...value].length; // characters, as the service counts them, not UTF-16 units
  if (schema.minLength !== undefined && length < schema.minLength) {
    fail(path, `Expected \`str\` of length >= ${schema.minLength}`);
  }
  if (schema.maxLength !== undefined && length > schema.maxLength) {
    fail(path, `Expected \`str\` of length <= ${schema.maxLength}`);
  }
  if (value.includes("\u0000")) fail(path, "Expected `str` without a NUL character");
}

function checkNumber(schema: Schema, value: number, path: string): void {
  const kind = schema.type === "integer" ? "int" : "float";
  if (schema.minimum !== undefined && value < schema.minimum) {
    fail(path, `Expected \`${kind}\` >= ${schema.minimum}`);
  }
  if (schema.maximum !== undefined && value > schema.maximum) {
    fail(path, `Expected \`${kind}\` <= ${schema.maximum}`);
  }
}

/** Why ``value`` (parsed JSON) could not be stored and returned unchanged, or null when it can: the
 * service's taskclaim.limits.json_problem, with the same numbers. */
export function jsonProblem(value: unknown): string | null {
  const maxDepth = LIMITS.MAX_JSON_DEPTH;
  const stack: [unknown, number][] = [[value, 0]];
  while (stack.length) {
    const [item, depth] = stack.pop()!;
    if (item !== null && typeof item === "object") {
      if (depth >= maxDepth) return `nests deeper than ${maxDepth} levels`;
      if (Array.isArray(item)) {
        for (const member of item) stack.push([member, depth + 1]);
      } else {
        for (const [key, member] of Object.entries(item)) {
          if (key.includes("\u0000")) return "has a key with a NUL character";
          stack.push([member, depth + 1]);
        }
      }
    } else if (typeof item === "string") {
      if (item.includes("\u0000")) return "has a string with a NUL character";
    } else if (typeof item === "number") {
      if (!Number.isFinite(item)) return "has a number that is not finite";
      if (Number.isInteger(item) && Math.abs(item) > LIMITS.MAX_SAFE_INTEGER) {
        return `has an integer outside ±${LIMITS.MAX_SAFE_INTEGER}`;
      }
    }
  }
  return null;
}
