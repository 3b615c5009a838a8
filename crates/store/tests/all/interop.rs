//! Our node as other Waku software sees it: it answers identify (agent version and the
//! protocols it serves), ping and Waku metadata (cluster and shards, in bytes a standard
//! protobuf decoder reads) over TCP and over WebSocket.

use std::{sync::Arc, time::Duration};

use libp2p::{Multiaddr, identity::Keypair, multiaddr::Protocol};
use paystreams_store::{
    NodeOptions, P2p, WakuNetwork,
    archive::{Archive, SqliteArchive},
    net::{NoInbound, PeerInfo},
    service::FreeStoreService,
};
use prost::Message as _;

/// `WakuMetadataRequest`/`WakuMetadataResponse` as a standard proto3 implementation declares
/// them (`optional uint32 cluster_id = 1; repeated uint32 shards = 2;`).
#[derive(Clone, PartialEq, prost::Message)]
struct StdMetadata {
    #[prost(uint32, optional, tag = "1")]
    cluster_id: Option<u32>,
    #[prost(uint32, repeated, tag = "2")]
    shards: Vec<u32>,
}

const DEADLINE: Duration = Duration::from_secs(20);

async fn wait_for_info(node: &P2p, peer: libp2p::PeerId, done: impl Fn(&PeerInfo) -> bool) -> PeerInfo {
    tokio::time::timeout(DEADLINE, async {
        loop {
            if let Some(info) = node.peer_info(peer).await
                && done(&info)
            {
                return info;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("identify and ping results within the deadline")
}

fn transport_addr(addr: &Multiaddr) -> Multiaddr {
    addr.iter().filter(|p| !matches!(p, Protocol::P2p(_))).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_answers_identify_ping_and_metadata_over_tcp_and_websocket() {
    let dir = tempfile::tempdir().expect("tempdir");
    let archive: Arc<dyn Archive> = Arc::new(SqliteArchive::open(&dir.path().join("archive.sqlite")).expect("archive"));
    let network = WakuNetwork { cluster_id: 7, shards: vec![0, 3, 300] };
    let server = P2p::start_with(
        Keypair::generate_ed25519(),
        NodeOptions {
            listen: vec!["/ip4/127.0.0.1/tcp/0".parse().expect("tcp"), "/ip4/127.0.0.1/tcp/0/ws".parse().expect("ws")],
            network: network.clone(),
        },
        Some(Arc::new(FreeStoreService::new(archive, Arc::default()))),
    )
    .await
    .expect("listens");
    let addrs = server.listen_addrs().to_vec();
    assert_eq!(addrs.len(), 2, "{addrs:?}");
    assert!(addrs[1].iter().any(|p| matches!(p, Protocol::Ws(_))), "{addrs:?}");

    for addr in addrs {
        // A fresh client per transport, so each connection is really over that transport.
        let client = P2p::start_with::<NoInbound>(Keypair::generate_ed25519(), NodeOptions::default(), None)
            .await
            .expect("client");
        let peer = server.peer_id();
        // Metadata, with the request and the answer in a standard encoder's bytes.
        let request = StdMetadata { cluster_id: Some(1), shards: vec![] }.encode_to_vec();
        let answer = client.metadata_raw(peer, Some(transport_addr(&addr)), request).await.expect("metadata answered");
        let decoded = StdMetadata::decode(answer.as_slice()).expect("a standard decoder reads the answer");
        assert_eq!(decoded, StdMetadata { cluster_id: Some(7), shards: vec![0, 3, 300] }, "over {addr}");
        // Our own decoder agrees, and an absent cluster id reads as absent.
        let typed = client.metadata(peer, None, &WakuNetwork::default()).await.expect("metadata");
        assert_eq!((typed.cluster_id, typed.shards), (Some(network.cluster_id), network.shards.clone()));

        let info = wait_for_info(&client, peer, |i| i.agent_version.is_some() && i.rtt.is_some()).await;
        let agent = info.agent_version.expect("agent");
        assert!(agent.starts_with("paystreams/") && agent.contains("Store v3"), "{agent}");
        for protocol in
            ["/vac/waku/store-query/3.0.0", "/vac/waku/metadata/1.0.0", "/ipfs/ping/1.0.0", "/ipfs/id/1.0.0"]
        {
            assert!(
                info.protocols.iter().any(|p| p == protocol),
                "{protocol} missing over {addr}: {:?}",
                info.protocols
            );
        }
        assert!(info.rtt.is_some());
        client.shutdown().await;
    }
    server.shutdown().await;
}

#[test]
fn metadata_decodes_what_standard_encoders_write() {
    use paystreams_store::wire::WakuMetadata;
    // Packed (a standard proto3 encoder's default for repeated scalars) and unpacked.
    #[derive(Clone, PartialEq, prost::Message)]
    struct Unpacked {
        #[prost(uint32, optional, tag = "1")]
        cluster_id: Option<u32>,
        #[prost(uint32, repeated, packed = "false", tag = "2")]
        shards: Vec<u32>,
    }
    for (cluster_id, shards) in
        [(Some(1), vec![0, 1, 2, 7]), (None, vec![]), (Some(0), vec![1023]), (Some(u32::MAX), vec![])]
    {
        let packed = StdMetadata { cluster_id, shards: shards.clone() }.encode_to_vec();
        let unpacked = Unpacked { cluster_id, shards: shards.clone() }.encode_to_vec();
        let ours = WakuMetadata { cluster_id, shards: shards.clone() };
        assert_eq!(WakuMetadata::decode(&packed).expect("packed"), ours);
        assert_eq!(WakuMetadata::decode(&unpacked).expect("unpacked"), ours);
        // We write what js-waku and nwaku write (unpacked), which prost reads back.
        assert_eq!(ours.encode(), unpacked);
        assert_eq!(StdMetadata::decode(ours.encode().as_slice()).expect("prost"), StdMetadata { cluster_id, shards });
    }
    // Bounds: too many shards, a value past u32, an oversized frame.
    let many =
        Unpacked { cluster_id: Some(1), shards: vec![1; paystreams_store::wire::SHARDS_MAX + 1] }.encode_to_vec();
    assert!(WakuMetadata::decode(&many).is_err());
    assert!(WakuMetadata::decode(&[0x10, 0x80, 0x80, 0x80, 0x80, 0x10]).is_err());
    assert!(WakuMetadata::decode(&vec![0u8; paystreams_store::wire::METADATA_MAX_LEN + 1]).is_err());
}

/// A peer that offers Mplex only (as js-waku's default libp2p does) gets a connection, identify
/// and ping over TCP and over WebSocket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mplex_only_peer_connects_over_tcp_and_websocket() {
    use futures::StreamExt as _;
    use libp2p::{identify, ping, swarm::SwarmEvent};

    #[derive(libp2p::swarm::NetworkBehaviour)]
    struct Minimal {
        identify: identify::Behaviour,
        ping: ping::Behaviour,
    }

    let server = P2p::start_with::<NoInbound>(
        Keypair::generate_ed25519(),
        NodeOptions {
            listen: vec!["/ip4/127.0.0.1/tcp/0".parse().expect("tcp"), "/ip4/127.0.0.1/tcp/0/ws".parse().expect("ws")],
            network: WakuNetwork::default(),
        },
        None,
    )
    .await
    .expect("listens");
    for addr in server.listen_addrs().to_vec() {
        let mut swarm = libp2p::SwarmBuilder::with_new_identity()
            .with_tokio()
            .with_tcp(libp2p::tcp::Config::default(), libp2p::noise::Config::new, libp2p_mplex::Config::default)
            .expect("tcp")
            .with_websocket(libp2p::noise::Config::new, libp2p_mplex::Config::default)
            .await
            .expect("ws")
            .with_behaviour(|key| Minimal {
                identify: identify::Behaviour::new(identify::Config::new("ipfs/0.1.0".to_owned(), key.public())),
                ping: ping::Behaviour::default(),
            })
            .expect("behaviour")
            .build();
        swarm.dial(addr.clone()).expect("dial");
        let (mut identified, mut pinged) = (None, false);
        tokio::time::timeout(DEADLINE, async {
            while identified.is_none() || !pinged {
                match swarm.select_next_some().await {
                    SwarmEvent::Behaviour(MinimalEvent::Identify(identify::Event::Received { info, .. })) => {
                        identified = Some(info);
                    }
                    SwarmEvent::Behaviour(MinimalEvent::Ping(ping::Event { result: Ok(_), .. })) => pinged = true,
                    SwarmEvent::OutgoingConnectionError { error, .. } => panic!("dial {addr} failed: {error}"),
                    _ => {}
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("identify and ping over {addr} within the deadline"));
        let info = identified.expect("identified");
        assert_eq!(info.public_key.to_peer_id(), server.peer_id());
        assert!(info.agent_version.starts_with("paystreams/"), "{}", info.agent_version);
        assert!(info.protocols.iter().any(|p| p.as_ref() == "/vac/waku/metadata/1.0.0"), "{:?}", info.protocols);
    }
    server.shutdown().await;
}
