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
import { privateKeyFromProtobuf } from "@libp2p/crypto/keys";
import { proto_store } from "@waku/proto";
import { Protocols } from "@waku/sdk";
import { agentClient, b64, exchange, field30, unb64, withField30 } from "../../js/lib/eligibility.mjs";
import { emit, env, lightNodeFor, waitForPeers, within } from "../../js/lib/waku.mjs";

const STORE_PROTOCOL = "/vac/waku/store-query/3.0.0";
const STEP_MS = 20_000;
const PAGES_MAX = 100;

const agent = agentClient(env("AGENT_URL"), env("AGENT_TOKEN_FILE"));
const provider = env("PROVIDER");
const providerWs = env("PROVIDER_WS");
const pubsubTopic = env("PUBSUB_TOPIC");
const contentTopic = env("CONTENT_TOPIC");
const pageSize = BigInt(process.env.PAGE_SIZE ?? "5");

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
    const bytes = await exchange(node, peer.id, STORE_PROTOCOL, withField30(request, unb64(proof.eligibility_proof)), STEP_MS);
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
