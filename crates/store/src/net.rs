//! libp2p transport: TCP and WebSocket, Noise, Yamux or Mplex (js-waku's default libp2p offers
//! Mplex only), the standard libp2p protocols other Waku software expects (identify
//! `/ipfs/id/1.0.0` with its push variant, ping `/ipfs/ping/1.0.0`), and request-response
//! protocols with Waku's framing (an unsigned-varint length prefix, then the protobuf body,
//! bounded):
//!
//! - `/vac/waku/metadata/1.0.0`: `WakuMetadataRequest` → `WakuMetadataResponse`, the node's
//!   cluster and shards ([`WakuNetwork`]); every node answers it, js-waku asks before it uses a
//!   peer;
//! - `/vac/waku/store-query/3.0.0`: `StoreQueryRequest` → `StoreQueryResponse`;
//! - `/paystreams/policy/1.0.0`: empty request → `ProviderAdvert` (policy, `provider_id`,
//!   accepted service ids, extensions);
//! - `/paystreams/receipt/1.0.0` (user → provider): a signed `DeliveryReceipt` → a receipt
//!   acknowledgement;
//! - `/paystreams/termination/1.0.0` (provider → user): `SessionTermination` → empty
//!   acknowledgement. The provider pushes it over the connection the user opened; the user
//!   never listens.
//!
//! [`P2p`] owns a swarm on a background task. Outbound requests go through [`P2p::request`];
//! inbound requests are handed to an [`Inbound`] handler on their own task (verification and
//! archive reads never block the swarm), and the answers come back to the swarm task to send.
//! A node started without an inbound handler is a user: it answers terminations itself and
//! hands them out through [`P2p::terminations`].

use std::{
    collections::{HashMap, HashSet},
    io,
    sync::Arc,
    time::Duration,
};

use futures::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, StreamExt as _};
use libp2p::{
    Multiaddr, PeerId, StreamProtocol, Swarm, identify,
    identity::Keypair,
    multiaddr::Protocol,
    ping,
    request_response::{self, OutboundRequestId, ProtocolSupport, ResponseChannel},
    swarm::{NetworkBehaviour, SwarmEvent},
};
use paystreams_wire::{SESSION_TERMINATION_MAX_LEN, SessionTermination, varint};
use tokio::sync::{broadcast, mpsc, oneshot};
use tracing::{debug, warn};

use crate::wire::{METADATA_MAX_LEN, REQUEST_MAX_LEN, RESPONSE_MAX_LEN, WakuMetadata};

/// Waku metadata (cluster and shards).
pub const METADATA_PROTOCOL: StreamProtocol = StreamProtocol::new("/vac/waku/metadata/1.0.0");
/// The identify protocol version string, libp2p's customary value (js-libp2p sends the same).
pub const IDENTIFY_PROTOCOL_VERSION: &str = "ipfs/0.1.0";
/// Waku's default cluster: The Waku Network, js-waku's `DEFAULT_CLUSTER_ID`.
pub const DEFAULT_CLUSTER_ID: u32 = 1;
/// Shards of the default cluster (js-waku's `DEFAULT_NUM_SHARDS`): autosharding maps every
/// content topic to one of them.
pub const DEFAULT_SHARD_COUNT: u32 = 8;
/// Store v3's protocol id.
pub const STORE_PROTOCOL: StreamProtocol = StreamProtocol::new("/vac/waku/store-query/3.0.0");
/// The provider's policy advertisement.
pub const POLICY_PROTOCOL: StreamProtocol = StreamProtocol::new("/paystreams/policy/1.0.0");
/// Largest policy answer: the largest advert the decoder accepts.
pub const POLICY_MAX_LEN: usize = paystreams_wire::ADVERT_MAX_LEN;
/// Delivery receipts, user → provider.
pub const RECEIPT_PROTOCOL: StreamProtocol = StreamProtocol::new("/paystreams/receipt/1.0.0");
/// Largest receipt request (a receipt body and its 64-byte signature, with room to spare).
pub const RECEIPT_MAX_LEN: usize = 1_024;
/// Largest receipt acknowledgement (a status and a description).
pub const RECEIPT_ACK_MAX_LEN: usize = 1_024;
/// Standalone terminations, provider → user.
pub const TERMINATION_PROTOCOL: StreamProtocol = StreamProtocol::new("/paystreams/termination/1.0.0");
/// Terminations a user node keeps for a slow reader before the oldest are dropped (each also
/// rides in the session's next response).
pub const TERMINATIONS_BUFFERED: usize = 256;
/// How long one request may take end to end before it fails.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Most concurrent streams per connection and protocol (bounds one peer's share of the provider).
pub const CONCURRENT_STREAMS_MAX: usize = 64;
/// Queued commands and answers between callers, handlers and the swarm task.
pub const CHANNEL_CAPACITY: usize = 1_024;
/// Most inbound requests handled at once across all peers; beyond it requests are answered
/// "busy" at once (Store: 429) instead of queueing without bound.
pub const INBOUND_CONCURRENT_MAX: usize = 512;
/// How long an idle connection stays open (a paying user pages through results on one).
pub const IDLE_CONNECTION_TIMEOUT: Duration = Duration::from_secs(120);
/// Reads one varint-length-prefixed frame of at most `max` bytes.
async fn read_frame<T: AsyncRead + Unpin + Send>(io: &mut T, max: usize) -> io::Result<Vec<u8>> {
    let mut prefix = varint::Decoder::new();
    let len = loop {
        let mut byte = [0u8; 1];
        io.read_exact(&mut byte).await?;
        match prefix.push(byte[0]) {
            Ok(Some(len)) => break len,
            Ok(None) => {}
            Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, format!("bad length prefix: {e}"))),
        }
    };
    let len = usize::try_from(len).map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "frame too large"))?;
    if len > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {len} bytes exceeds the limit of {max}"),
        ));
    }
    let mut body = vec![0u8; len];
    io.read_exact(&mut body).await?;
    Ok(body)
}

/// Writes one varint-length-prefixed frame.
async fn write_frame<T: AsyncWrite + Unpin + Send>(io: &mut T, body: &[u8]) -> io::Result<()> {
    let len = u64::try_from(body.len()).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "frame too large"))?;
    io.write_all(&varint::to_vec(len)).await?;
    io.write_all(body).await?;
    io.flush().await
}

/// The framing codec, with per-direction size limits.
#[derive(Clone, Copy, Debug)]
pub struct FramedCodec {
    request_max: usize,
    response_max: usize,
}

impl request_response::Codec for FramedCodec {
    type Protocol = StreamProtocol;
    type Request = Vec<u8>;
    type Response = Vec<u8>;

    async fn read_request<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<Vec<u8>> {
        read_frame(io, self.request_max).await
    }

    async fn read_response<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<Vec<u8>> {
        read_frame(io, self.response_max).await
    }

    async fn write_request<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: Vec<u8>,
    ) -> io::Result<()> {
        write_frame(io, &req).await
    }

    async fn write_response<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: Vec<u8>,
    ) -> io::Result<()> {
        write_frame(io, &res).await
    }
}

/// The agent version identify announces: names the software and what it serves.
#[must_use]
pub fn agent_version(serve: bool) -> String {
    let role = if serve { "Store v3 provider paid by LIP-155 payment streams" } else { "user" };
    format!("paystreams/{} ({role})", env!("CARGO_PKG_VERSION"))
}

/// The Waku network a node belongs to, announced over `/vac/waku/metadata/1.0.0`: a js-waku
/// node uses a Store peer for a pubsub topic only when the peer's cluster is its own and its
/// shards include the topic's shard (`/waku/2/rs/<cluster>/<shard>`).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct WakuNetwork {
    pub cluster_id: u32,
    pub shards: Vec<u32>,
}

impl Default for WakuNetwork {
    /// js-waku's default network config: cluster 1, shards 0 to 7.
    fn default() -> Self {
        Self { cluster_id: DEFAULT_CLUSTER_ID, shards: (0..DEFAULT_SHARD_COUNT).collect() }
    }
}

impl WakuNetwork {
    fn metadata(&self) -> WakuMetadata {
        WakuMetadata { cluster_id: Some(self.cluster_id), shards: self.shards.clone() }
    }
}

/// The pubsub topic Waku autosharding (and js-waku with its default network config) assigns
/// to `content_topic` (`/{application}/{version}/{name}/{encoding}`, optionally with a leading
/// generation 0): `/waku/2/rs/{cluster_id}/{shard}`, the shard being the last eight bytes of
/// SHA-256(application ‖ version), big-endian, modulo `shard_count`. A js-waku app queries
/// Store under this pubsub topic, so messages it should find are archived under it.
///
/// # Errors
/// A malformed content topic, or `shard_count` 0.
pub fn autoshard_pubsub_topic(content_topic: &str, cluster_id: u32, shard_count: u32) -> Result<String, String> {
    use sha2::{Digest as _, Sha256};
    let parts: Vec<&str> = content_topic.split('/').collect();
    let fields = match parts.as_slice() {
        ["", fields @ ..] if fields.len() == 4 => fields,
        ["", generation, fields @ ..] if fields.len() == 4 => {
            if *generation != "0" {
                return Err(format!("{content_topic:?}: only generation 0 is defined"));
            }
            fields
        }
        _ => {
            return Err(format!(
                "{content_topic:?} is not a Waku content topic: use /APPLICATION/VERSION/NAME/ENCODING"
            ));
        }
    };
    if fields.iter().any(|f| f.is_empty()) {
        return Err(format!("{content_topic:?}: application, version, name and encoding must not be empty"));
    }
    if shard_count == 0 {
        return Err("the cluster must have at least one shard".to_owned());
    }
    let digest = Sha256::new().chain_update(fields[0]).chain_update(fields[1]).finalize();
    let mut tail = [0u8; 8];
    tail.copy_from_slice(&digest[24..]);
    let shard = u64::from_be_bytes(tail) % u64::from(shard_count);
    Ok(format!("/waku/2/rs/{cluster_id}/{shard}"))
}

/// How a node starts.
#[derive(Clone, Debug, Default)]
pub struct NodeOptions {
    /// Addresses to listen on: TCP (`/ip4/127.0.0.1/tcp/0`) or WebSocket
    /// (`/ip4/127.0.0.1/tcp/0/ws`); empty for a node that only dials.
    pub listen: Vec<Multiaddr>,
    /// What metadata announces.
    pub network: WakuNetwork,
}

/// What a node learned about a peer from identify and ping.
#[derive(Clone, Debug, Default)]
pub struct PeerInfo {
    /// The peer's identify answer: agent version and protocols, when received.
    pub agent_version: Option<String>,
    pub protocols: Vec<String>,
    /// The last ping round trip, when one succeeded.
    pub rtt: Option<Duration>,
}

/// Our protocols and the standard ones.
#[derive(NetworkBehaviour)]
pub struct Behaviour {
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    metadata: request_response::Behaviour<FramedCodec>,
    store: request_response::Behaviour<FramedCodec>,
    policy: request_response::Behaviour<FramedCodec>,
    receipt: request_response::Behaviour<FramedCodec>,
    termination: request_response::Behaviour<FramedCodec>,
}

impl Behaviour {
    fn new(keypair: &Keypair, serve: bool) -> Self {
        // A provider answers the user → provider protocols and sends terminations; a user the
        // other way round.
        let (to_provider, to_user) = if serve {
            (ProtocolSupport::Inbound, ProtocolSupport::Outbound)
        } else {
            (ProtocolSupport::Outbound, ProtocolSupport::Inbound)
        };
        let config = request_response::Config::default()
            .with_request_timeout(REQUEST_TIMEOUT)
            .with_max_concurrent_streams(CONCURRENT_STREAMS_MAX);
        Self {
            identify: identify::Behaviour::new(
                identify::Config::new(IDENTIFY_PROTOCOL_VERSION.to_owned(), keypair.public())
                    .with_agent_version(agent_version(serve)),
            ),
            ping: ping::Behaviour::default(),
            metadata: request_response::Behaviour::with_codec(
                FramedCodec { request_max: METADATA_MAX_LEN, response_max: METADATA_MAX_LEN },
                [(METADATA_PROTOCOL, ProtocolSupport::Full)],
                config.clone(),
            ),
            store: request_response::Behaviour::with_codec(
                FramedCodec { request_max: REQUEST_MAX_LEN, response_max: RESPONSE_MAX_LEN },
                [(STORE_PROTOCOL, to_provider.clone())],
                config.clone(),
            ),
            policy: request_response::Behaviour::with_codec(
                FramedCodec { request_max: 0, response_max: POLICY_MAX_LEN },
                [(POLICY_PROTOCOL, to_provider.clone())],
                config.clone(),
            ),
            receipt: request_response::Behaviour::with_codec(
                FramedCodec { request_max: RECEIPT_MAX_LEN, response_max: RECEIPT_ACK_MAX_LEN },
                [(RECEIPT_PROTOCOL, to_provider)],
                config.clone(),
            ),
            termination: request_response::Behaviour::with_codec(
                FramedCodec { request_max: SESSION_TERMINATION_MAX_LEN, response_max: 0 },
                [(TERMINATION_PROTOCOL, to_user)],
                config,
            ),
        }
    }

    fn rr(&mut self, kind: Kind) -> &mut request_response::Behaviour<FramedCodec> {
        match kind {
            Kind::Metadata => &mut self.metadata,
            Kind::Service(Proto::Store) => &mut self.store,
            Kind::Service(Proto::Policy) => &mut self.policy,
            Kind::Service(Proto::Receipt) => &mut self.receipt,
            Kind::Service(Proto::Termination) => &mut self.termination,
        }
    }

    fn send_request(&mut self, kind: Kind, peer: &PeerId, body: Vec<u8>) -> OutboundRequestId {
        self.rr(kind).send_request(peer, body)
    }

    fn send_response(&mut self, kind: Kind, channel: ResponseChannel<Vec<u8>>, body: Vec<u8>) -> bool {
        self.rr(kind).send_response(channel, body).is_ok()
    }
}

/// A request-response protocol: one of the service's, or metadata (answered by the node
/// itself). Each protocol numbers its requests on its own, so pending requests are keyed by
/// both.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Kind {
    Service(Proto),
    Metadata,
}

/// Which protocol a request is for.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Proto {
    Store,
    Policy,
    /// `/paystreams/receipt/1.0.0`, user → provider.
    Receipt,
    /// `/paystreams/termination/1.0.0`, provider → user.
    Termination,
}

/// Answers inbound requests (the provider's service).
pub trait Inbound: Send + Sync + 'static {
    /// The response body for `request` from `peer`.
    fn answer(&self, proto: Proto, peer: PeerId, request: Vec<u8>) -> impl Future<Output = Vec<u8>> + Send;

    /// The answer when [`INBOUND_CONCURRENT_MAX`] requests are already in progress.
    fn busy(&self, proto: Proto, request: &[u8]) -> Vec<u8>;
}

/// A node that only makes requests.
#[derive(Debug)]
pub struct NoInbound;

impl Inbound for NoInbound {
    async fn answer(&self, _: Proto, _: PeerId, _: Vec<u8>) -> Vec<u8> {
        Vec::new()
    }

    fn busy(&self, _: Proto, _: &[u8]) -> Vec<u8> {
        Vec::new()
    }
}

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("{0}")]
    BadAddress(String),
    #[error("request to {peer} failed: {reason}")]
    Request { peer: PeerId, reason: String },
    #[error("the network task has stopped")]
    Stopped,
    #[error("cannot listen on {addr}: {reason}")]
    Listen { addr: Multiaddr, reason: String },
    #[error("transport setup: {0}")]
    Setup(String),
    #[error("{0} is not connected")]
    NotConnected(PeerId),
}

enum Command {
    Request {
        peer: PeerId,
        addr: Option<Multiaddr>,
        kind: Kind,
        body: Vec<u8>,
        reply: oneshot::Sender<Result<Vec<u8>, NetError>>,
    },
    /// A request sent only over an existing connection (never dials).
    Push {
        peer: PeerId,
        proto: Proto,
        body: Vec<u8>,
        reply: oneshot::Sender<Result<Vec<u8>, NetError>>,
    },
    Disconnect {
        peer: PeerId,
    },
    Connected {
        reply: oneshot::Sender<HashSet<PeerId>>,
    },
    PeerInfo {
        peer: PeerId,
        reply: oneshot::Sender<Option<PeerInfo>>,
    },
    Shutdown,
}

/// A running libp2p node.
#[derive(Clone, Debug)]
pub struct P2p {
    peer_id: PeerId,
    listen: Vec<Multiaddr>,
    commands: mpsc::Sender<Command>,
    task: Arc<std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>>,
    /// A user node's received terminations (`None` on a provider).
    terminations: Option<broadcast::Sender<(PeerId, SessionTermination)>>,
}

/// Splits `/ip4/…/tcp/…/p2p/<id>` into the peer id and the transport address.
///
/// # Errors
/// No `/p2p/` component, or not a multiaddr.
pub fn split_peer_addr(addr: &str) -> Result<(PeerId, Multiaddr), NetError> {
    let mut parsed: Multiaddr = addr.parse().map_err(|e| {
        NetError::BadAddress(format!("{addr:?} is not a multiaddr ({e}); expected /ip4/HOST/tcp/PORT/p2p/PEER_ID"))
    })?;
    match parsed.pop() {
        Some(Protocol::P2p(peer)) => Ok((peer, parsed)),
        _ => Err(NetError::BadAddress(format!(
            "{addr:?} must end in /p2p/PEER_ID (the provider prints its full address when it starts)"
        ))),
    }
}

impl P2p {
    /// Starts a node. With `listen`, it listens there and returns once the listener is up (so
    /// [`P2p::listen_addrs`] has the real port); `inbound` answers requests when `serve`.
    ///
    /// # Errors
    /// Transport setup or listen failures.
    pub async fn start<I: Inbound>(
        keypair: Keypair,
        listen: Option<Multiaddr>,
        inbound: Option<Arc<I>>,
    ) -> Result<Self, NetError> {
        Self::start_with(
            keypair,
            NodeOptions { listen: listen.into_iter().collect(), ..NodeOptions::default() },
            inbound,
        )
        .await
    }

    /// Starts a node listening on every address of `options.listen` (TCP or WebSocket); returns
    /// once each listener is up, so [`P2p::listen_addrs`] has the real ports, in the same order.
    ///
    /// # Errors
    /// Transport setup or listen failures.
    pub async fn start_with<I: Inbound>(
        keypair: Keypair,
        options: NodeOptions,
        inbound: Option<Arc<I>>,
    ) -> Result<Self, NetError> {
        let serve = inbound.is_some();
        let identity = keypair.clone();
        let mut swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
            .with_tokio()
            .with_tcp(
                libp2p::tcp::Config::default().nodelay(true),
                libp2p::noise::Config::new,
                (libp2p::yamux::Config::default, libp2p_mplex::Config::default),
            )
            .map_err(|e| NetError::Setup(e.to_string()))?
            .with_websocket(libp2p::noise::Config::new, (libp2p::yamux::Config::default, libp2p_mplex::Config::default))
            .await
            .map_err(|e| NetError::Setup(e.to_string()))?
            .with_behaviour(|_| Behaviour::new(&identity, serve))
            .map_err(|e| NetError::Setup(e.to_string()))?
            .with_swarm_config(|c| c.with_idle_connection_timeout(IDLE_CONNECTION_TIMEOUT))
            .build();
        let peer_id = *swarm.local_peer_id();
        let mut addrs = Vec::new();
        for addr in options.listen {
            let listener = swarm
                .listen_on(addr.clone())
                .map_err(|e| NetError::Listen { addr: addr.clone(), reason: e.to_string() })?;
            loop {
                match swarm.select_next_some().await {
                    SwarmEvent::NewListenAddr { listener_id, address } if listener_id == listener => {
                        addrs.push(address.with(Protocol::P2p(peer_id)));
                        break;
                    }
                    SwarmEvent::ListenerError { listener_id, error }
                    | SwarmEvent::ListenerClosed { listener_id, reason: Err(error), .. }
                        if listener_id == listener =>
                    {
                        return Err(NetError::Listen { addr, reason: error.to_string() });
                    }
                    _ => {}
                }
            }
        }
        let (commands, rx) = mpsc::channel(CHANNEL_CAPACITY);
        let terminations = (!serve).then(|| broadcast::channel(TERMINATIONS_BUFFERED).0);
        let node = Node { network: options.network, inbound, terminations: terminations.clone() };
        let task = tokio::spawn(drive(swarm, rx, node));
        Ok(Self { peer_id, listen: addrs, commands, task: Arc::new(std::sync::Mutex::new(Some(task))), terminations })
    }

    /// A user node's standalone terminations, as `(sending peer, message)`, from now on (each is
    /// acknowledged whether or not anyone listens). `None` on a provider node.
    #[must_use]
    pub fn terminations(&self) -> Option<broadcast::Receiver<(PeerId, SessionTermination)>> {
        self.terminations.as_ref().map(broadcast::Sender::subscribe)
    }

    /// Sends one request to `peer` over an open connection only: fails with
    /// [`NetError::NotConnected`] instead of dialing (a provider reaches users this way).
    ///
    /// # Errors
    /// Not connected, timeout, protocol or size failures.
    pub async fn push(&self, peer: PeerId, proto: Proto, body: Vec<u8>) -> Result<Vec<u8>, NetError> {
        let (reply, answer) = oneshot::channel();
        self.commands.send(Command::Push { peer, proto, body, reply }).await.map_err(|_| NetError::Stopped)?;
        answer.await.map_err(|_| NetError::Stopped)?
    }

    #[must_use]
    pub const fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// Full dialable addresses, ending in `/p2p/<peer id>`.
    #[must_use]
    pub fn listen_addrs(&self) -> &[Multiaddr] {
        &self.listen
    }

    /// Sends one request and waits for its response.
    ///
    /// # Errors
    /// Dial, timeout, protocol or size failures.
    pub async fn request(
        &self,
        peer: PeerId,
        addr: Option<Multiaddr>,
        proto: Proto,
        body: Vec<u8>,
    ) -> Result<Vec<u8>, NetError> {
        self.send(peer, addr, Kind::Service(proto), body).await
    }

    async fn send(
        &self,
        peer: PeerId,
        addr: Option<Multiaddr>,
        kind: Kind,
        body: Vec<u8>,
    ) -> Result<Vec<u8>, NetError> {
        let (reply, answer) = oneshot::channel();
        self.commands.send(Command::Request { peer, addr, kind, body, reply }).await.map_err(|_| NetError::Stopped)?;
        answer.await.map_err(|_| NetError::Stopped)?
    }

    /// Asks `peer` for its Waku metadata (cluster and shards), sending ours.
    ///
    /// # Errors
    /// Dial, timeout, protocol or size failures, or an answer that does not decode.
    pub async fn metadata(
        &self,
        peer: PeerId,
        addr: Option<Multiaddr>,
        ours: &WakuNetwork,
    ) -> Result<WakuMetadata, NetError> {
        let bytes = self.metadata_raw(peer, addr, ours.metadata().encode()).await?;
        WakuMetadata::decode(&bytes)
            .map_err(|e| NetError::Request { peer, reason: format!("malformed metadata answer: {e}") })
    }

    /// Sends a metadata request of the caller's bytes and returns the answer's bytes as they
    /// came.
    ///
    /// # Errors
    /// Dial, timeout, protocol or size failures.
    pub async fn metadata_raw(
        &self,
        peer: PeerId,
        addr: Option<Multiaddr>,
        request: Vec<u8>,
    ) -> Result<Vec<u8>, NetError> {
        self.send(peer, addr, Kind::Metadata, request).await
    }

    /// What identify and ping told this node about `peer` so far (`None`: nothing yet).
    pub async fn peer_info(&self, peer: PeerId) -> Option<PeerInfo> {
        let (reply, answer) = oneshot::channel();
        self.commands.send(Command::PeerInfo { peer, reply }).await.ok()?;
        answer.await.ok().flatten()
    }

    /// Stops the node: closes the listener and every connection, and returns once the swarm
    /// and the inbound handler are dropped (so whatever the handler holds is released).
    pub async fn shutdown(&self) {
        let _ = self.commands.send(Command::Shutdown).await;
        let task = self.task.lock().ok().and_then(|mut t| t.take());
        if let Some(task) = task {
            let _ = task.await;
        }
    }

    /// The peers with an open connection now.
    pub async fn connected(&self) -> HashSet<PeerId> {
        let (reply, answer) = oneshot::channel();
        if self.commands.send(Command::Connected { reply }).await.is_err() {
            return HashSet::new();
        }
        answer.await.unwrap_or_default()
    }

    /// Closes every connection to `peer` (the next request dials again).
    pub async fn disconnect(&self, peer: PeerId) {
        let _ = self.commands.send(Command::Disconnect { peer }).await;
    }
}

type Answer = (Proto, ResponseChannel<Vec<u8>>, Vec<u8>);

/// Where the answer to one outbound request goes.
type Reply = oneshot::Sender<Result<Vec<u8>, NetError>>;

/// The entry for `peer`, created when there is room.
fn peer_entry(peers: &mut HashMap<PeerId, PeerInfo>, peer: PeerId) -> Option<&mut PeerInfo> {
    if peers.len() >= PEER_INFO_MAX && !peers.contains_key(&peer) {
        return None;
    }
    Some(peers.entry(peer).or_default())
}

/// A user node's answer to a pushed termination: hand it out, acknowledge with an empty body
/// (also when it does not decode: the provider cannot do better, the next response carries it).
fn take_termination(peer: PeerId, body: &[u8], sink: Option<&broadcast::Sender<(PeerId, SessionTermination)>>) {
    match SessionTermination::decode(body) {
        Ok(message) => {
            if let Some(sink) = sink {
                let _ = sink.send((peer, message));
            }
        }
        Err(e) => warn!(%peer, error = %e, "malformed SessionTermination"),
    }
}

/// What the swarm task answers with.
struct Node<I> {
    network: WakuNetwork,
    inbound: Option<Arc<I>>,
    terminations: Option<broadcast::Sender<(PeerId, SessionTermination)>>,
}

/// Most peers whose identify and ping results are kept (connected peers; entries are dropped
/// when the last connection closes).
pub const PEER_INFO_MAX: usize = 4_096;

async fn drive<I: Inbound>(mut swarm: Swarm<Behaviour>, mut commands: mpsc::Receiver<Command>, node: Node<I>) {
    let Node { network, inbound, terminations } = node;
    let metadata_answer = network.metadata().encode();
    let mut peers: HashMap<PeerId, PeerInfo> = HashMap::new();
    let mut pending: HashMap<(Kind, OutboundRequestId), Reply> = HashMap::new();
    let (answers_tx, mut answers) = mpsc::channel::<Answer>(CHANNEL_CAPACITY);
    let permits = Arc::new(tokio::sync::Semaphore::new(INBOUND_CONCURRENT_MAX));
    // Handler tasks, so stopping ends them and releases what the handler holds.
    let mut handlers = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            Some(_) = handlers.join_next(), if !handlers.is_empty() => {}
            command = commands.recv() => {
                let Some(command) = command else { break };
                match command {
                    Command::Request { peer, addr, kind, body, reply } => {
                        if let Some(addr) = addr {
                            swarm.add_peer_address(peer, addr);
                        }
                        let id = swarm.behaviour_mut().send_request(kind, &peer, body);
                        pending.insert((kind, id), reply);
                    }
                    Command::Push { peer, proto, body, reply } => {
                        if swarm.is_connected(&peer) {
                            let kind = Kind::Service(proto);
                            let id = swarm.behaviour_mut().send_request(kind, &peer, body);
                            pending.insert((kind, id), reply);
                        } else {
                            let _ = reply.send(Err(NetError::NotConnected(peer)));
                        }
                    }
                    Command::Disconnect { peer } => {
                        let _ = swarm.disconnect_peer_id(peer);
                    }
                    Command::Connected { reply } => {
                        let _ = reply.send(swarm.connected_peers().copied().collect());
                    }
                    Command::PeerInfo { peer, reply } => {
                        let _ = reply.send(peers.get(&peer).cloned());
                    }
                    Command::Shutdown => break,
                }
            }
            Some((proto, channel, body)) = answers.recv() => {
                if !swarm.behaviour_mut().send_response(Kind::Service(proto), channel, body) {
                    debug!("peer went away before its response was sent");
                }
            }
            event = swarm.select_next_some() => {
                let (kind, event) = match event {
                    SwarmEvent::Behaviour(BehaviourEvent::Store(e)) => (Kind::Service(Proto::Store), e),
                    SwarmEvent::Behaviour(BehaviourEvent::Policy(e)) => (Kind::Service(Proto::Policy), e),
                    SwarmEvent::Behaviour(BehaviourEvent::Receipt(e)) => (Kind::Service(Proto::Receipt), e),
                    SwarmEvent::Behaviour(BehaviourEvent::Termination(e)) => (Kind::Service(Proto::Termination), e),
                    SwarmEvent::Behaviour(BehaviourEvent::Metadata(e)) => (Kind::Metadata, e),
                    SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. })) => {
                        if let Some(entry) = peer_entry(&mut peers, peer_id) {
                            entry.agent_version = Some(info.agent_version);
                            entry.protocols = info.protocols.iter().map(ToString::to_string).collect();
                        }
                        continue;
                    }
                    SwarmEvent::Behaviour(BehaviourEvent::Ping(ping::Event { peer, result: Ok(rtt), .. })) => {
                        if let Some(entry) = peer_entry(&mut peers, peer) {
                            entry.rtt = Some(rtt);
                        }
                        continue;
                    }
                    SwarmEvent::ConnectionClosed { peer_id, num_established: 0, .. } => {
                        peers.remove(&peer_id);
                        continue;
                    }
                    other => {
                        debug!(?other, "swarm event");
                        continue;
                    }
                };
                match event {
                    request_response::Event::Message { peer, message: request_response::Message::Request { request, channel, .. }, .. } => {
                        let proto = match kind {
                            Kind::Metadata => {
                                match WakuMetadata::decode(&request) {
                                    Ok(theirs) if theirs.cluster_id.is_some_and(|c| c != network.cluster_id) => {
                                        debug!(%peer, ?theirs, "metadata from a peer of another cluster");
                                    }
                                    Ok(_) => {}
                                    Err(e) => debug!(%peer, error = %e, "malformed metadata request; answering anyway"),
                                }
                                let _ = swarm.behaviour_mut().send_response(kind, channel, metadata_answer.clone());
                                continue;
                            }
                            Kind::Service(proto) => proto,
                        };
                        if proto == Proto::Termination {
                            take_termination(peer, &request, terminations.as_ref());
                            let _ = swarm.behaviour_mut().send_response(kind, channel, Vec::new());
                            continue;
                        }
                        let Some(handler) = inbound.clone() else { continue };
                        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
                            let body = handler.busy(proto, &request);
                            let _ = swarm.behaviour_mut().send_response(kind, channel, body);
                            continue;
                        };
                        let tx = answers_tx.clone();
                        handlers.spawn(async move {
                            let body = handler.answer(proto, peer, request).await;
                            drop(permit);
                            let _ = tx.send((proto, channel, body)).await;
                        });
                    }
                    request_response::Event::Message { message: request_response::Message::Response { request_id, response }, .. } => {
                        if let Some(reply) = pending.remove(&(kind, request_id)) {
                            let _ = reply.send(Ok(response));
                        }
                    }
                    request_response::Event::OutboundFailure { peer, request_id, error, .. } => {
                        if let Some(reply) = pending.remove(&(kind, request_id)) {
                            let _ = reply.send(Err(NetError::Request { peer, reason: error.to_string() }));
                        }
                    }
                    request_response::Event::InboundFailure { peer, error, .. } => {
                        warn!(%peer, %error, "inbound request failed");
                    }
                    request_response::Event::ResponseSent { .. } => {}
                }
            }
        }
    }
    handlers.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What js-waku 0.0.36 (`contentTopicToPubsubTopic(topic, 1, 8)` of `@waku/utils` 0.0.27)
    /// derives for these topics.
    #[test]
    fn autosharding_matches_js_waku() {
        for (topic, expected) in [
            ("/paystreams/1/interop/proto", "/waku/2/rs/1/0"),
            ("/toy-chat/2/huilong/proto", "/waku/2/rs/1/7"),
            ("/a/b/c/d", "/waku/2/rs/1/3"),
            ("/0/app/1/x/proto", "/waku/2/rs/1/4"),
        ] {
            assert_eq!(autoshard_pubsub_topic(topic, 1, 8).as_deref(), Ok(expected), "{topic}");
        }
        for bad in ["", "/a/b/c", "a/b/c/d", "/1/a/b/c/d", "/a//c/d", "/x/y/a/b/c/d"] {
            assert!(autoshard_pubsub_topic(bad, 1, 8).is_err(), "{bad:?}");
        }
        assert!(autoshard_pubsub_topic("/a/b/c/d", 1, 0).is_err());
    }
}
