//! libp2p transport: TCP, Noise, Yamux, and two request-response protocols with Waku's framing
//! (an unsigned-varint length prefix, then the protobuf body, bounded):
//!
//! - `/vac/waku/store-query/3.0.0`: `StoreQueryRequest` → `StoreQueryResponse`;
//! - `/vac/waku/lightpush/3.0.0`: `LightpushRequest` → `LightpushResponse` (paid pushes
//!   stored in the archive, see `crate::lightpush`);
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
    Multiaddr, PeerId, StreamProtocol, Swarm,
    identity::Keypair,
    multiaddr::Protocol,
    request_response::{self, OutboundRequestId, ProtocolSupport, ResponseChannel},
    swarm::{NetworkBehaviour, SwarmEvent},
};
use paystreams_wire::{SESSION_TERMINATION_MAX_LEN, SessionTermination, varint};
use tokio::sync::{broadcast, mpsc, oneshot};
use tracing::{debug, warn};

use crate::{
    lightpush::{LIGHTPUSH_REQUEST_MAX_LEN, LIGHTPUSH_RESPONSE_MAX_LEN},
    wire::{REQUEST_MAX_LEN, RESPONSE_MAX_LEN},
};

/// Store v3's protocol id.
pub const STORE_PROTOCOL: StreamProtocol = StreamProtocol::new("/vac/waku/store-query/3.0.0");
/// Lightpush v3's protocol id.
pub const LIGHTPUSH_PROTOCOL: StreamProtocol = StreamProtocol::new(crate::lightpush::LIGHTPUSH_SERVICE_ID);
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

/// The four protocols.
#[derive(NetworkBehaviour)]
pub struct Behaviour {
    store: request_response::Behaviour<FramedCodec>,
    lightpush: request_response::Behaviour<FramedCodec>,
    policy: request_response::Behaviour<FramedCodec>,
    receipt: request_response::Behaviour<FramedCodec>,
    termination: request_response::Behaviour<FramedCodec>,
}

impl Behaviour {
    fn new(serve: bool) -> Self {
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
            store: request_response::Behaviour::with_codec(
                FramedCodec { request_max: REQUEST_MAX_LEN, response_max: RESPONSE_MAX_LEN },
                [(STORE_PROTOCOL, to_provider.clone())],
                config.clone(),
            ),
            lightpush: request_response::Behaviour::with_codec(
                FramedCodec { request_max: LIGHTPUSH_REQUEST_MAX_LEN, response_max: LIGHTPUSH_RESPONSE_MAX_LEN },
                [(LIGHTPUSH_PROTOCOL, to_provider.clone())],
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

    fn send_request(&mut self, proto: Proto, peer: &PeerId, body: Vec<u8>) -> OutboundRequestId {
        match proto {
            Proto::Store => self.store.send_request(peer, body),
            Proto::Lightpush => self.lightpush.send_request(peer, body),
            Proto::Policy => self.policy.send_request(peer, body),
            Proto::Receipt => self.receipt.send_request(peer, body),
            Proto::Termination => self.termination.send_request(peer, body),
        }
    }

    fn send_response(&mut self, proto: Proto, channel: ResponseChannel<Vec<u8>>, body: Vec<u8>) -> bool {
        match proto {
            Proto::Store => self.store.send_response(channel, body),
            Proto::Lightpush => self.lightpush.send_response(channel, body),
            Proto::Policy => self.policy.send_response(channel, body),
            Proto::Receipt => self.receipt.send_response(channel, body),
            Proto::Termination => self.termination.send_response(channel, body),
        }
        .is_ok()
    }
}

/// Which protocol a request is for.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Proto {
    Store,
    /// `/vac/waku/lightpush/3.0.0`, user → provider.
    Lightpush,
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
        proto: Proto,
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
        let serve = inbound.is_some();
        let mut swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
            .with_tokio()
            .with_tcp(
                libp2p::tcp::Config::default().nodelay(true),
                libp2p::noise::Config::new,
                libp2p::yamux::Config::default,
            )
            .map_err(|e| NetError::Setup(e.to_string()))?
            .with_behaviour(|_| Behaviour::new(serve))
            .map_err(|e| NetError::Setup(e.to_string()))?
            .with_swarm_config(|c| c.with_idle_connection_timeout(IDLE_CONNECTION_TIMEOUT))
            .build();
        let peer_id = *swarm.local_peer_id();
        let mut addrs = Vec::new();
        if let Some(addr) = listen {
            swarm
                .listen_on(addr.clone())
                .map_err(|e| NetError::Listen { addr: addr.clone(), reason: e.to_string() })?;
            loop {
                match swarm.select_next_some().await {
                    SwarmEvent::NewListenAddr { address, .. } => {
                        addrs.push(address.with(Protocol::P2p(peer_id)));
                        break;
                    }
                    SwarmEvent::ListenerError { error, .. } | SwarmEvent::ListenerClosed { reason: Err(error), .. } => {
                        return Err(NetError::Listen { addr, reason: error.to_string() });
                    }
                    _ => {}
                }
            }
        }
        let (commands, rx) = mpsc::channel(CHANNEL_CAPACITY);
        let terminations = (!serve).then(|| broadcast::channel(TERMINATIONS_BUFFERED).0);
        let task = tokio::spawn(drive(swarm, rx, inbound, terminations.clone()));
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
        let (reply, answer) = oneshot::channel();
        self.commands.send(Command::Request { peer, addr, proto, body, reply }).await.map_err(|_| NetError::Stopped)?;
        answer.await.map_err(|_| NetError::Stopped)?
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

async fn drive<I: Inbound>(
    mut swarm: Swarm<Behaviour>,
    mut commands: mpsc::Receiver<Command>,
    inbound: Option<Arc<I>>,
    terminations: Option<broadcast::Sender<(PeerId, SessionTermination)>>,
) {
    let mut pending: HashMap<OutboundRequestId, oneshot::Sender<Result<Vec<u8>, NetError>>> = HashMap::new();
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
                    Command::Request { peer, addr, proto, body, reply } => {
                        if let Some(addr) = addr {
                            swarm.add_peer_address(peer, addr);
                        }
                        let id = swarm.behaviour_mut().send_request(proto, &peer, body);
                        pending.insert(id, reply);
                    }
                    Command::Push { peer, proto, body, reply } => {
                        if swarm.is_connected(&peer) {
                            let id = swarm.behaviour_mut().send_request(proto, &peer, body);
                            pending.insert(id, reply);
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
                    Command::Shutdown => break,
                }
            }
            Some((proto, channel, body)) = answers.recv() => {
                if !swarm.behaviour_mut().send_response(proto, channel, body) {
                    debug!("peer went away before its response was sent");
                }
            }
            event = swarm.select_next_some() => {
                let (proto, event) = match event {
                    SwarmEvent::Behaviour(BehaviourEvent::Store(e)) => (Proto::Store, e),
                    SwarmEvent::Behaviour(BehaviourEvent::Lightpush(e)) => (Proto::Lightpush, e),
                    SwarmEvent::Behaviour(BehaviourEvent::Policy(e)) => (Proto::Policy, e),
                    SwarmEvent::Behaviour(BehaviourEvent::Receipt(e)) => (Proto::Receipt, e),
                    SwarmEvent::Behaviour(BehaviourEvent::Termination(e)) => (Proto::Termination, e),
                    other => {
                        debug!(?other, "swarm event");
                        continue;
                    }
                };
                match event {
                    request_response::Event::Message { peer, message: request_response::Message::Request { request, channel, .. }, .. } => {
                        if proto == Proto::Termination {
                            take_termination(peer, &request, terminations.as_ref());
                            let _ = swarm.behaviour_mut().send_response(proto, channel, Vec::new());
                            continue;
                        }
                        let Some(handler) = inbound.clone() else { continue };
                        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
                            let body = handler.busy(proto, &request);
                            let _ = swarm.behaviour_mut().send_response(proto, channel, body);
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
                        if let Some(reply) = pending.remove(&request_id) {
                            let _ = reply.send(Ok(response));
                        }
                    }
                    request_response::Event::OutboundFailure { peer, request_id, error, .. } => {
                        if let Some(reply) = pending.remove(&request_id) {
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
