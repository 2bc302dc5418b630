// The console's KMS client: AWS JSON 1.1 over `POST /`, signed with SigV4 in the browser.
// Credentials live in this tab's sessionStorage only; they are never sent (only signatures are).

import { signKmsRequest } from "./sigv4.js";

const CONTENT_TYPE = "application/x-amz-json-1.1";
const STORE = "keyferry-console-credentials";

export class KmsError extends Error {
  constructor(type, message, status) {
    super(message);
    this.type = type;
    this.status = status;
  }
  /** "ExceptionName: message", as the console shows it. */
  toString() {
    return this.message ? `${this.type}: ${this.message}` : this.type;
  }
}

export function loadCredentials() {
  try {
    const raw = sessionStorage.getItem(STORE);
    return raw ? JSON.parse(raw) : null;
  } catch {
    return null;
  }
}

export function saveCredentials(c) {
  sessionStorage.setItem(STORE, JSON.stringify(c));
}

export function clearCredentials() {
  sessionStorage.removeItem(STORE);
}

/** Call one KMS operation; resolves to the response object, rejects with KmsError. */
export async function call(op, input = {}, creds = loadCredentials()) {
  if (!creds) throw new KmsError("NotSignedIn", "Sign in first.", 0);
  if (!globalThis.crypto || !crypto.subtle)
    throw new KmsError(
      "InsecureContext",
      "WebCrypto is unavailable: open the console over https or on a loopback address.",
      0,
    );
  const body = JSON.stringify(input);
  const target = `TrentService.${op}`;
  const headers = await signKmsRequest(creds, location.host, target, CONTENT_TYPE, body);
  let resp;
  try {
    resp = await fetch("/", { method: "POST", headers, body, credentials: "omit", cache: "no-store" });
  } catch (e) {
    throw new KmsError("NetworkError", `The request did not reach the server (${e.message}).`, 0);
  }
  const text = await resp.text();
  let json = {};
  if (text) {
    try {
      json = JSON.parse(text);
    } catch {
      throw new KmsError("InvalidResponse", `HTTP ${resp.status}: the answer is not JSON.`, resp.status);
    }
  }
  if (!resp.ok) {
    const raw = json.__type || resp.headers.get("x-amzn-errortype") || `HTTP${resp.status}`;
    const type = String(raw).split("#").pop().split(":")[0];
    throw new KmsError(type, json.message || json.Message || "", resp.status);
  }
  return json;
}

/** Every page of a paged List* operation: the `field` arrays concatenated. */
export async function listAll(op, input, field) {
  const out = [];
  let marker;
  for (let i = 0; i < 1000; i++) {
    const r = await call(op, marker ? { ...input, Marker: marker } : input);
    out.push(...(r[field] || []));
    if (!r.Truncated || !r.NextMarker) break;
    marker = r.NextMarker;
  }
  return out;
}

export function b64ToBytes(b64) {
  const s = atob(b64);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

export function bytesToB64(bytes) {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000)
    s += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  return btoa(s);
}
