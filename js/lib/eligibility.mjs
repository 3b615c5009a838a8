// What a JavaScript app needs to pay for a Waku request with LIP-155 streams, on top of
// js-waku: the eligibility proof appended to its own encoded request as field 30, the verdict
// read back from field 30 of the answer, one request-response over a libp2p stream with Waku's
// framing (varint length prefix), and calls to `paystream agent`'s HTTP API.
import { readFileSync } from "node:fs";
import all from "it-all";
import * as lp from "it-length-prefixed";
import { pipe } from "it-pipe";
import { Uint8ArrayList } from "uint8arraylist";
import { within } from "./waku.mjs";

export const b64 = (bytes) => Buffer.from(bytes).toString("base64");
export const unb64 = (text) => new Uint8Array(Buffer.from(text, "base64"));

/** Protobuf unsigned varint. */
export function varint(value) {
  const out = [];
  let v = value;
  while (v >= 0x80) {
    out.push((v & 0x7f) | 0x80);
    v = Math.floor(v / 128);
  }
  out.push(v);
  return out;
}

/** `request` (encoded protobuf) with `proof` appended as field 30 (length-delimited). */
export function withField30(request, proof) {
  const head = [...varint((30 << 3) | 2), ...varint(proof.length)];
  const out = new Uint8Array(request.length + head.length + proof.length);
  out.set(request, 0);
  out.set(head, request.length);
  out.set(proof, request.length + head.length);
  return out;
}

/** The bytes of field 30 of an encoded answer (the eligibility status), or null. */
export function field30(bytes) {
  let i = 0;
  const readVarint = () => {
    let value = 0;
    let shift = 0;
    for (;;) {
      if (i >= bytes.length) throw new Error("truncated varint in the answer");
      const b = bytes[i++];
      value += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) return value;
      shift += 7;
    }
  };
  while (i < bytes.length) {
    const key = readVarint();
    const wire = key % 8;
    if (wire === 0) readVarint();
    else if (wire === 1) i += 8;
    else if (wire === 5) i += 4;
    else if (wire === 2) {
      const len = readVarint();
      if (Math.floor(key / 8) === 30) return bytes.subarray(i, i + len);
      i += len;
    } else throw new Error(`unexpected wire type ${wire} in the answer`);
  }
  return null;
}

/** Sends `request` to `peerId` on `protocol` over a new stream of `node` and returns the answer's bytes. */
export async function exchange(node, peerId, protocol, request, ms) {
  const stream = await within(ms, `opening a ${protocol} stream`, node.libp2p.dialProtocol(peerId, protocol));
  const chunks = await within(
    ms,
    `the answer on ${protocol}`,
    pipe([request], (s) => lp.encode(s), stream, (s) => lp.decode(s), (s) => all(s)),
  );
  return new Uint8ArrayList(...chunks).subarray();
}

/** A caller of the agent at `url` with the token in `tokenFile`; throws with the agent's error text. */
export function agentClient(url, tokenFile) {
  const base = url.replace(/\/$/, "");
  const token = readFileSync(tokenFile, "utf8").split("\n")[0].trim();
  return async function agent(method, path, body) {
    const response = await fetch(`${base}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const answer = await response.json();
    if (!response.ok) throw new Error(`agent ${method} ${path}: HTTP ${response.status}: ${answer.error}`);
    return answer;
  };
}
