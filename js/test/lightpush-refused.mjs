// js-waku's own LightPush client pushes to a paystreams provider without paying.
//
// Environment: PROVIDER_WS (the provider's /ws multiaddr ending in /p2p/PEER_ID),
// CONTENT_TOPIC (the message's content topic), PAYLOAD (its text).
//
// The light node gets the provider as a bootstrap peer, waits until identify told it the
// provider serves Lightpush, and sends one message with `node.lightPush.send(encoder,
// message)`. The push carries no eligibility proof, so the provider refuses it; js-waku reports
// the refusal as REMOTE_PEER_REJECTED in the result and writes the provider's status code and
// description to its error log (stderr with DEBUG=waku:*:error). Prints one JSON line with what
// it saw; exits 0 when the push ran to an answer, 1 otherwise.
import "../lib/polyfill.mjs";
import { Protocols, utf8ToBytes } from "@waku/sdk";
import { emit, env, lightNodeFor, waitForPeers, within } from "../lib/waku.mjs";

const STEP_MS = 20_000;

const providerWs = env("PROVIDER_WS");
const contentTopic = env("CONTENT_TOPIC");
const payload = env("PAYLOAD");
const providerId = providerWs.split("/p2p/")[1];

const node = await lightNodeFor(providerWs);
const report = { ok: false, provider: providerId };
try {
  await within(STEP_MS, "waiting for a Lightpush peer", waitForPeers(node, [Protocols.LightPush], STEP_MS));
  const peer = (await node.libp2p.peerStore.all()).find((p) => p.id.toString() === providerId);
  report.protocols = peer ? [...peer.protocols].sort() : [];

  const encoder = node.createEncoder({ contentTopic });
  report.pubsub_topic = encoder.pubsubTopic;
  const result = await within(
    STEP_MS,
    "light push",
    node.lightPush.send(encoder, { payload: utf8ToBytes(payload) }, { autoRetry: false }),
  );
  report.successes = (result.successes ?? []).map((p) => p.toString());
  report.failures = (result.failures ?? []).map((f) => ({ error: String(f.error), peer: f.peerId?.toString() }));
  report.ok = true;
} catch (e) {
  report.error = String(e?.message ?? e);
} finally {
  await node.stop().catch(() => {});
}
emit(report);
process.exit(report.ok ? 0 : 1);
