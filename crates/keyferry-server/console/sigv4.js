// SigV4 signing in the browser with WebCrypto (HMAC-SHA256, SHA-256): the console signs each
// KMS request exactly as the SDKs do. The secret access key never leaves the tab.
// Signed headers: content-type;host;x-amz-date;x-amz-target (the browser sets Host itself).

const enc = new TextEncoder();

export const SIGNED_HEADERS = "content-type;host;x-amz-date;x-amz-target";

function hex(buf) {
  return Array.from(new Uint8Array(buf), (b) => b.toString(16).padStart(2, "0")).join("");
}

export async function sha256Hex(data) {
  const bytes = typeof data === "string" ? enc.encode(data) : data;
  return hex(await crypto.subtle.digest("SHA-256", bytes));
}

async function hmac(key, msg) {
  const k = await crypto.subtle.importKey("raw", key, { name: "HMAC", hash: "SHA-256" }, false, [
    "sign",
  ]);
  return new Uint8Array(await crypto.subtle.sign("HMAC", k, enc.encode(msg)));
}

/** `YYYYMMDD'T'HHMMSS'Z'` for a Date. */
export function amzDate(d) {
  return d.toISOString().replace(/[-:]/g, "").replace(/\.\d{3}/, "");
}

/**
 * Headers for `POST /` with the given body, signed for service `kms`.
 * creds: {accessKeyId, secretAccessKey, region}; host: what the browser sends as Host.
 */
export async function signKmsRequest(creds, host, target, contentType, body, now = new Date()) {
  const date = amzDate(now);
  const day = date.slice(0, 8);
  const canonicalHeaders =
    `content-type:${contentType}\n` +
    `host:${host}\n` +
    `x-amz-date:${date}\n` +
    `x-amz-target:${target}\n`;
  const canonicalRequest = [
    "POST",
    "/",
    "",
    canonicalHeaders,
    SIGNED_HEADERS,
    await sha256Hex(body),
  ].join("\n");
  const scope = `${day}/${creds.region}/kms/aws4_request`;
  const stringToSign = ["AWS4-HMAC-SHA256", date, scope, await sha256Hex(canonicalRequest)].join(
    "\n",
  );
  let key = await hmac(enc.encode("AWS4" + creds.secretAccessKey), day);
  key = await hmac(key, creds.region);
  key = await hmac(key, "kms");
  key = await hmac(key, "aws4_request");
  const signature = hex(await hmac(key, stringToSign));
  return {
    "Content-Type": contentType,
    "X-Amz-Date": date,
    "X-Amz-Target": target,
    Authorization:
      `AWS4-HMAC-SHA256 Credential=${creds.accessKeyId}/${scope}, ` +
      `SignedHeaders=${SIGNED_HEADERS}, Signature=${signature}`,
  };
}
