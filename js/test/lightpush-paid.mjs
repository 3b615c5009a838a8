// A paid push from JavaScript: js-waku's encoder makes the message, `@waku/proto` encodes the
// Lightpush v3 request, the eligibility proof is appended as field 30 (bytes), and the request
// goes out on a libp2p stream of /vac/waku/lightpush/3.0.0 from the js-waku node.
//
// Environment: PROVIDER_WS (the provider's /ws multiaddr ending in /p2p/PEER_ID),
// CONTENT_TOPIC, PAYLOAD (text), PROOF_HEX (a serialized EligibilityProof, hex: what
// `paystream agent` or the user engine hands out for this provider).
//
// Prints one JSON line: the status js-waku's own decoder read, and the response bytes (hex)
// so the caller can read the verdict at field 30; exits 0 when an answer came back.
import "../lib/polyfill.mjs";
import { proto_lightpush as proto } from "@waku/proto";
import { Protocols, utf8ToBytes } from "@waku/sdk";
import { exchange, withField30 } from "../lib/eligibility.mjs";
import { emit, env, lightNodeFor, waitForPeers, within } from "../lib/waku.mjs";

const STEP_MS = 20_000;
const LIGHTPUSH_V3 = "/vac/waku/lightpush/3.0.0";

const providerWs = env("PROVIDER_WS");
const contentTopic = env("CONTENT_TOPIC");
const payload = env("PAYLOAD");
const proof = Uint8Array.from(Buffer.from(env("PROOF_HEX"), "hex"));
const providerId = providerWs.split("/p2p/")[1];

const node = await lightNodeFor(providerWs);
const report = { ok: false, provider: providerId };
try {
  await within(STEP_MS, "waiting for a Lightpush peer", waitForPeers(node, [Protocols.LightPush], STEP_MS));
  const peer = (await node.libp2p.peerStore.all()).find((p) => p.id.toString() === providerId);
  if (!peer) throw new Error("the provider is not in js-waku's peer store");

  const encoder = node.createEncoder({ contentTopic });
  const message = await encoder.toProtoObj({ payload: utf8ToBytes(payload) });
  const requestId = crypto.randomUUID();
  const body = proto.LightPushRequestV3.encode({ requestId, pubsubTopic: encoder.pubsubTopic, message });
  const request = withField30(body, proof);
  report.pubsub_topic = encoder.pubsubTopic;
  report.request_id = requestId;
  report.peer_id = node.libp2p.peerId.toString();

  const bytes = await exchange(node, peer.id, LIGHTPUSH_V3, request, STEP_MS);
  const response = proto.LightPushResponseV3.decode(bytes);
  report.status_code = response.statusCode;
  report.status_desc = response.statusDesc ?? null;
  report.request_id_echoed = response.requestId === requestId;
  report.response_hex = Buffer.from(bytes).toString("hex");
  report.ok = true;
} catch (e) {
  report.error = String(e?.message ?? e);
} finally {
  await node.stop().catch(() => {});
}
emit(report);
process.exit(report.ok ? 0 : 1);
