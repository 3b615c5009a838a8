// A js-waku light node made the usual way finds a paystreams Store provider and queries it.
//
// Environment: PROVIDER_WS (the provider's /ws multiaddr ending in /p2p/PEER_ID),
// CONTENT_TOPIC (a topic the provider's archive holds), DISCOVERY ("bootstrap", the default:
// the address is a bootstrap peer; "store-peers": it is given as `store: { peers }`).
//
// The node gets the provider only as a bootstrap or Store peer (no manual dial), waits for a Store peer
// (identify told js-waku the provider serves Store, metadata put it on the topic's shard),
// pings it, then queries Store through js-waku's own API. The provider is paid and the query
// carries no proof, so js-waku must fail with the provider's readable refusal. Prints one JSON
// line with what it saw; exits 0 when every check passed, 1 otherwise.
import "../lib/polyfill.mjs";
import { Protocols, utils } from "@waku/sdk";
import { emit, env, fail, lightNodeFor, waitForPeers, within } from "../lib/waku.mjs";

const STEP_MS = 20_000;

const providerWs = env("PROVIDER_WS");
const contentTopic = env("CONTENT_TOPIC");
const providerId = providerWs.split("/p2p/")[1];

const via = process.env.DISCOVERY ?? "bootstrap";
const node = await lightNodeFor(providerWs, {}, via);
const report = { ok: false, provider: providerId, via };
try {
  await within(STEP_MS, "waiting for a Store peer", waitForPeers(node, [Protocols.Store], STEP_MS));

  const peer = (await node.libp2p.peerStore.all()).find((p) => p.id.toString() === providerId);
  if (!peer) throw new Error("the provider is not in js-waku's peer store");
  report.protocols = [...peer.protocols].sort();
  report.agent_version = new TextDecoder().decode(peer.metadata.get("AgentVersion") ?? new Uint8Array());
  const shardBytes = peer.metadata.get("shardInfo");
  report.shard_info = shardBytes ? utils.decodeRelayShard(shardBytes) : null;
  report.connected = node.libp2p.getConnections(peer.id).map((c) => c.remoteAddr.toString());

  report.ping_ms = await within(STEP_MS, "ping", node.libp2p.services.ping.ping(peer.id));

  const decoder = node.createDecoder({ contentTopic });
  report.pubsub_topic = decoder.pubsubTopic;
  const received = [];
  try {
    await within(
      STEP_MS,
      "Store query",
      node.store.queryWithOrderedCallback([decoder], (message) => {
        received.push(message.payload.length);
      }),
    );
    report.query_error = null;
  } catch (e) {
    report.query_error = String(e?.message ?? e);
  }
  report.messages = received.length;
  report.ok = true;
} catch (e) {
  report.error = String(e?.message ?? e);
} finally {
  await node.stop().catch(() => {});
}
emit(report);
process.exit(report.ok ? 0 : 1);
