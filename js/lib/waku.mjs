// Shared helpers for the scripts under js/: a js-waku light node pointed at one provider, the
// way an app developer makes one, and the one-line JSON output the Rust harness reads.
import "./polyfill.mjs";
import { createLightNode, Protocols } from "@waku/sdk";

/** A required environment variable, or exit 2 with a message naming it. */
export function env(name) {
  const value = process.env[name];
  if (!value) {
    fail(`environment variable ${name} is not set`, 2);
  }
  return value;
}

/** Prints one JSON object on its own line (the harness reads stdout line by line). */
export function emit(object) {
  process.stdout.write(`${JSON.stringify(object)}\n`);
}

/** Reports a failure as a JSON line and exits with `code`. */
export function fail(message, code = 1) {
  emit({ ok: false, error: message });
  process.exit(code);
}

/**
 * A started js-waku light node whose only peer source is `addr` (a multiaddr ending in
 * /p2p/PEER_ID, e.g. the provider's /ws address), given as a bootstrap peer (`via`
 * "bootstrap") or as its Store peer (`via` "store-peers", `store: { peers }`): js-waku dials
 * it, runs identify and metadata, and picks it for the protocols it announces. Default
 * transports, muxers and encryption; the default network config (cluster 1, autosharding over
 * 8 shards).
 */
export async function lightNodeFor(addr, options = {}, via = "bootstrap") {
  const peers = via === "store-peers" ? { store: { peers: [addr] } } : { bootstrapPeers: [addr] };
  const node = await createLightNode({
    ...peers,
    // Plain ws on loopback: js-waku dials only secure WebSockets unless told otherwise.
    libp2p: { filterMultiaddrs: false, hideWebSocketInfo: true },
    ...options,
  });
  await node.start();
  return node;
}

/** Waits until js-waku has a peer for each of `protocols` (default: Store), at most `ms`. */
export async function waitForPeers(node, protocols = [Protocols.Store], ms = 20_000) {
  await node.waitForPeers(protocols, ms);
}

/** Rejects after `ms` with `what` in the message, so a hang becomes a readable failure. */
export function within(ms, what, promise) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
