// A js-waku app that pays for Store queries through `paystream agent`.
//
// It makes a js-waku light node that dials the provider with the identity the agent keeps for
// that provider (the provider finds the session of a stream proof by the peer that proposed
// it), encodes its own Store v3 query with js-waku's protobuf (@waku/proto), asks the agent for
// the EligibilityProof to attach, appends it as field 30, sends the query over
// /vac/waku/store-query/3.0.0 (varint length prefix, as js-waku does), decodes the answer
// (field 30 too), reports the provider's verdict back to the agent, and pages through: the
// first page carries the proposal (the agent then creates the stream), every later page a
// stream proof.
//
// Environment:
//   AGENT_URL        the agent's address, as `paystream agent` printed it (http://127.0.0.1:PORT)
//   AGENT_TOKEN_FILE the token file it printed
//   PROVIDER         the provider's TCP multiaddr (the agent reads its policy there)
//   PROVIDER_WS      the provider's WebSocket multiaddr (js-waku dials it)
//   PUBSUB_TOPIC, CONTENT_TOPIC   what to query
//   PAGE_SIZE        messages per page (default 5)
//
// Prints one JSON line: { ok, messages: [payload text...], pages: [{kind, reaction}...] }.
//
// Run from the repository root after `npm ci` (see README.md next to this file).
import "../../js/lib/polyfill.mjs";
import { readFileSync } from "node:fs";
import { privateKeyFromProtobuf } from "@libp2p/crypto/keys";
import { proto_store } from "@waku/proto";
import { Protocols } from "@waku/sdk";
import all from "it-all";
import * as lp from "it-length-prefixed";
import { pipe } from "it-pipe";
import { Uint8ArrayList } from "uint8arraylist";
import { emit, env, lightNodeFor, waitForPeers, within } from "../../js/lib/waku.mjs";

const STORE_PROTOCOL = "/vac/waku/store-query/3.0.0";
const STEP_MS = 20_000;
const PAGES_MAX = 100;

const agentUrl = env("AGENT_URL").replace(/\/$/, "");
const token = readFileSync(env("AGENT_TOKEN_FILE"), "utf8").split("\n")[0].trim();
const provider = env("PROVIDER");
const providerWs = env("PROVIDER_WS");
const pubsubTopic = env("PUBSUB_TOPIC");
const contentTopic = env("CONTENT_TOPIC");
const pageSize = BigInt(process.env.PAGE_SIZE ?? "5");

/** One call to the agent's API; throws with the agent's own error text. */
async function agent(method, path, body) {
  const response = await fetch(`${agentUrl}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const answer = await response.json();
  if (!response.ok) throw new Error(`agent ${method} ${path}: HTTP ${response.status}: ${answer.error}`);
  return answer;
}

const b64 = (bytes) => Buffer.from(bytes).toString("base64");
const unb64 = (text) => new Uint8Array(Buffer.from(text, "base64"));

function varint(value) {
  const out = [];
  let v = value;
  while (v >= 0x80) {
    out.push((v & 0x7f) | 0x80);
    v >>>= 7;
  }
  out.push(v);
  return out;
}

/** `request` with `proof` appended as field 30 (length-delimited): what @waku/proto lacks. */
function withField30(request, proof) {
  const tag = varint((30 << 3) | 2);
  const len = varint(proof.length);
  const out = new Uint8Array(request.length + tag.length + len.length + proof.length);
  out.set(request, 0);
  out.set(tag, request.length);
  out.set(len, request.length + tag.length);
  out.set(proof, request.length + tag.length + len.length);
  return out;
}

/** The bytes of field 30 of an encoded response (the eligibility status), if present. */
function field30(bytes) {
  let i = 0;
  const readVarint = () => {
    let value = 0;
    let shift = 0;
    for (;;) {
      if (i >= bytes.length) throw new Error("truncated varint in the response");
      const b = bytes[i++];
      value += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) return value;
      shift += 7;
    }
  };
  while (i < bytes.length) {
    const key = readVarint();
    const field = Math.floor(key / 8);
    const wire = key % 8;
    if (wire === 0) readVarint();
    else if (wire === 1) i += 8;
    else if (wire === 5) i += 4;
    else if (wire === 2) {
      const len = readVarint();
      if (field === 30) return bytes.subarray(i, i + len);
      i += len;
    } else throw new Error(`unexpected wire type ${wire} in the response`);
  }
  return null;
}

const report = { ok: false, messages: [], pages: [] };
let node;
try {
  // The identity the agent keeps for this provider: dial with it.
  const identity = await agent("GET", `/v1/identity?provider=${encodeURIComponent(provider)}`);
  const privateKey = privateKeyFromProtobuf(unb64(identity.private_key));
  node = await lightNodeFor(
    providerWs,
    { libp2p: { privateKey, filterMultiaddrs: false, hideWebSocketInfo: true } },
    "store-peers",
  );
  report.requester = node.libp2p.peerId.toString();
  if (report.requester !== identity.requester_peer_id) {
    throw new Error(`js-waku runs as ${report.requester}, not the agent's ${identity.requester_peer_id}`);
  }
  await within(STEP_MS, "waiting for the provider as Store peer", waitForPeers(node, [Protocols.Store], STEP_MS));
  const peer = (await node.libp2p.peerStore.all()).find((p) => p.id.toString() === identity.provider_peer_id);
  if (!peer) throw new Error("the provider is not among js-waku's peers");

  let cursor;
  for (let n = 0; n < PAGES_MAX; n++) {
    const request = proto_store.StoreQueryRequest.encode({
      requestId: crypto.randomUUID(),
      includeData: true,
      pubsubTopic,
      contentTopics: [contentTopic],
      messageHashes: [],
      paginationCursor: cursor,
      paginationForward: true,
      paginationLimit: pageSize,
    });
    const proof = await agent("POST", "/v1/proof", { provider, store_request: b64(request) });
    const stream = await within(STEP_MS, "opening a Store stream", node.libp2p.dialProtocol(peer.id, STORE_PROTOCOL));
    const chunks = await within(
      STEP_MS,
      "Store query",
      pipe([withField30(request, unb64(proof.eligibility_proof))], (s) => lp.encode(s), stream, (s) => lp.decode(s), (s) => all(s)),
    );
    const bytes = new Uint8ArrayList(...chunks).subarray();
    const response = proto_store.StoreQueryResponse.decode(bytes);
    const eligibility = field30(bytes);
    if (!eligibility) throw new Error(`the provider sent no verdict: ${response.statusCode} ${response.statusDesc}`);
    const outcome = await agent("POST", "/v1/outcome", { session: proof.session, eligibility: b64(eligibility) });
    report.pages.push({ kind: proof.kind, reaction: outcome.reaction, status: response.statusCode });
    if (response.statusCode !== 200) {
      throw new Error(`Store refused: ${response.statusCode} ${response.statusDesc} (agent: ${outcome.reaction})`);
    }
    for (const entry of response.messages) {
      if (entry.message) report.messages.push(new TextDecoder().decode(entry.message.payload));
    }
    cursor = response.paginationCursor;
    if (!cursor || cursor.length === 0) break;
  }
  report.session = (await agent("GET", "/v1/sessions")).sessions.map((s) => s.id);
  report.ok = true;
} catch (e) {
  report.error = String(e?.message ?? e);
} finally {
  await node?.stop().catch(() => {});
}
emit(report);
process.exit(report.ok ? 0 : 1);
