// Paid pushes from a js-waku app through `paystream agent`: the app dials the provider with the
// identity the agent keeps for it, encodes each Lightpush v3 request with `@waku/proto`
// (js-waku's encoder makes the message and its autosharded pubsub topic), computes the
// request's canonical Lightpush digest (docs/lightpush.md), asks the agent for the
// EligibilityProof, appends it as field 30, sends it on /vac/waku/lightpush/3.0.0 and reports
// the provider's verdict (field 30 of the answer) back to the agent. The first push carries a
// proposal (the agent creates the stream on the outcome), the next ones stream proofs.
//
// Environment: AGENT_URL, AGENT_TOKEN_FILE (as `paystream agent` printed them), PROVIDER (the
// provider's TCP multiaddr), PROVIDER_WS (its WebSocket multiaddr), CONTENT_TOPIC, PAYLOADS
// (texts separated by commas, one push each).
//
// Prints one JSON line: { ok, pubsub_topic, pushes: [{kind, status, status_desc, reaction}] }.
import "../lib/polyfill.mjs";
import { createHash } from "node:crypto";
import { privateKeyFromProtobuf } from "@libp2p/crypto/keys";
import { proto_lightpush as proto } from "@waku/proto";
import { Protocols, utf8ToBytes } from "@waku/sdk";
import { agentClient, b64, exchange, field30, unb64, withField30 } from "../lib/eligibility.mjs";
import { emit, env, lightNodeFor, waitForPeers, within } from "../lib/waku.mjs";

const STEP_MS = 20_000;
const LIGHTPUSH_V3 = "/vac/waku/lightpush/3.0.0";

const agent = agentClient(env("AGENT_URL"), env("AGENT_TOKEN_FILE"));
const provider = env("PROVIDER");
const providerWs = env("PROVIDER_WS");
const contentTopic = env("CONTENT_TOPIC");
const payloads = env("PAYLOADS").split(",");

// The canonical Lightpush request a stream proof signs: Borsh (u32 little-endian lengths,
// presence bytes for optionals) of the request without field 30, under its domain prefix.
const PREFIX = Buffer.alloc(32);
PREFIX.write("/LEZ/v0.1/LightpushEligibility/");
const u32 = (n) => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
};
const borshBytes = (bytes) => Buffer.concat([u32(bytes.length), Buffer.from(bytes)]);
const borshString = (text) => borshBytes(Buffer.from(text, "utf8"));
function requestDigest(requestId, pubsubTopic, m) {
  const timestamp = Buffer.alloc(8);
  if (m.timestamp !== undefined) timestamp.writeBigInt64LE(BigInt(m.timestamp));
  const message = Buffer.concat([
    borshBytes(m.payload ?? new Uint8Array()),
    borshString(m.contentTopic),
    u32(m.version ?? 0),
    m.timestamp === undefined ? Buffer.from([0]) : Buffer.concat([Buffer.from([1]), timestamp]),
    borshBytes(m.meta ?? new Uint8Array()),
    Buffer.from([m.ephemeral ? 1 : 0]),
  ]);
  const body = Buffer.concat([borshString(requestId), Buffer.from([1]), borshString(pubsubTopic), Buffer.from([1]), message]);
  return createHash("sha256").update(PREFIX).update(body).digest("hex");
}

const report = { ok: false, pushes: [] };
let node;
try {
  const identity = await agent("GET", `/v1/identity?provider=${encodeURIComponent(provider)}`);
  const privateKey = privateKeyFromProtobuf(unb64(identity.private_key));
  node = await lightNodeFor(providerWs, { libp2p: { privateKey, filterMultiaddrs: false, hideWebSocketInfo: true } });
  if (node.libp2p.peerId.toString() !== identity.requester_peer_id) {
    throw new Error(`js-waku runs as ${node.libp2p.peerId}, not the agent's ${identity.requester_peer_id}`);
  }
  await within(STEP_MS, "waiting for a Lightpush peer", waitForPeers(node, [Protocols.LightPush], STEP_MS));
  const peer = (await node.libp2p.peerStore.all()).find((p) => p.id.toString() === identity.provider_peer_id);
  if (!peer) throw new Error("the provider is not among js-waku's peers");

  const encoder = node.createEncoder({ contentTopic });
  report.pubsub_topic = encoder.pubsubTopic;
  for (const text of payloads) {
    const message = await encoder.toProtoObj({ payload: utf8ToBytes(text) });
    const requestId = crypto.randomUUID();
    const request = proto.LightPushRequestV3.encode({ requestId, pubsubTopic: encoder.pubsubTopic, message });
    const digest = requestDigest(requestId, encoder.pubsubTopic, message);
    const proof = await agent("POST", "/v1/proof", {
      provider,
      service_id: LIGHTPUSH_V3,
      request_digest: digest,
    });
    const bytes = await exchange(node, peer.id, LIGHTPUSH_V3, withField30(request, unb64(proof.eligibility_proof)), STEP_MS);
    const response = proto.LightPushResponseV3.decode(bytes);
    const eligibility = field30(bytes);
    if (!eligibility) throw new Error(`no verdict: ${response.statusCode} ${response.statusDesc}`);
    const outcome = await agent("POST", "/v1/outcome", { session: proof.session, eligibility: b64(eligibility) });
    report.pushes.push({
      kind: proof.kind,
      status: response.statusCode,
      status_desc: response.statusDesc ?? null,
      reaction: outcome.reaction,
    });
    if (response.statusCode !== 200) throw new Error(`push refused: ${response.statusCode} ${response.statusDesc}`);
  }
  report.ok = true;
} catch (e) {
  report.error = String(e?.message ?? e);
} finally {
  await node?.stop().catch(() => {});
}
emit(report);
process.exit(report.ok ? 0 : 1);
