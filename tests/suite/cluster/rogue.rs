//! A hostile (or broken) peer for tests: a QUIC client holding a pinned
//! certificate that sends whatever bytes the test wants.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use puente::node::identity::{self, NodeIdentity};
use puente::stamp::SiteId;
use puente::sync::pinning;
use puente::sync::protocol::{ErrorCode, FrameDecoder, Hello, Message, PROTOCOL_VERSION, encode};

use super::{Office, puente};

pub struct Rogue {
    pub name: String,
    pub fingerprint: String,
    identity: NodeIdentity,
    endpoint: quinn::Endpoint,
}

impl Rogue {
    /// A new identity (made with `puente init` under `dir`).
    pub fn new(dir: &std::path::Path, name: &str) -> Rogue {
        let out = puente(&[
            "init",
            "--dir",
            dir.to_str().unwrap(),
            "--name",
            name,
            "--listen",
            "127.0.0.1:9",
        ]);
        let fingerprint = out.lines().last().unwrap().trim().to_string();
        let identity =
            identity::load(&dir.join("certs/node.crt"), &dir.join("certs/node.key")).unwrap();
        let endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
        Rogue {
            name: name.into(),
            fingerprint,
            identity,
            endpoint,
        }
    }

    /// Connects to `target`, which must have pinned this rogue.
    pub async fn connect(&self, target: &Office) -> Result<RogueSession, String> {
        let crypto = pinning::client_crypto(
            &self.identity,
            target.fingerprint,
            Default::default(),
            puente::sync::protocol::SPOKEN,
        )
        .unwrap();
        let config = quinn::ClientConfig::new(Arc::new(crypto));
        let addr: SocketAddr = target.addr();
        let conn = self
            .endpoint
            .connect_with(config, addr, "puente")
            .map_err(|e| e.to_string())?
            .await
            .map_err(|e| e.to_string())?;
        let (send, recv) = conn.open_bi().await.map_err(|e| e.to_string())?;
        Ok(RogueSession {
            conn,
            send,
            recv,
            decoder: FrameDecoder::new(),
        })
    }
}

pub struct RogueSession {
    pub conn: quinn::Connection,
    pub send: quinn::SendStream,
    pub recv: quinn::RecvStream,
    decoder: FrameDecoder,
}

impl RogueSession {
    pub async fn send_raw(&mut self, bytes: &[u8]) {
        let _ = self.send.write_all(bytes).await;
    }

    pub async fn send(&mut self, message: &Message) {
        let frame = encode(message).unwrap();
        self.send_raw(&frame).await;
    }

    /// A Hello for a replica with schema `schema_hash`, in `protocol`,
    /// advertising every version up to it.
    pub async fn hello(&mut self, schema_hash: &str, protocol: u16) {
        self.hello_advertising(schema_hash, protocol, (1..=protocol).collect())
            .await;
    }

    /// A Hello advertising `versions`, whatever they are.
    pub async fn hello_advertising(
        &mut self,
        schema_hash: &str,
        protocol: u16,
        versions: Vec<u16>,
    ) {
        self.send(&Message::Hello(Hello {
            protocol,
            versions,
            site: SiteId::random(),
            node: "rogue".into(),
            schema_hash: schema_hash.into(),
            schema: Some(String::new()),
            head: 0,
            wall_ms: 0,
        }))
        .await;
    }

    /// A valid Hello presenting the replica `site` (a tampered office's
    /// own, so that its forged changes can carry it).
    pub async fn hello_as(&mut self, site: SiteId, schema_hash: &str) {
        self.send(&Message::Hello(Hello {
            protocol: PROTOCOL_VERSION,
            versions: (1..=PROTOCOL_VERSION).collect(),
            site,
            node: "rogue".into(),
            schema_hash: schema_hash.into(),
            schema: Some(String::new()),
            head: 0,
            wall_ms: 0,
        }))
        .await;
    }

    pub async fn valid_hello(&mut self, schema_hash: &str) {
        self.hello(schema_hash, PROTOCOL_VERSION).await;
    }

    /// The next message from the target, if one comes within 10 s.
    pub async fn next_message(&mut self) -> Option<Message> {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            if let Ok(Some(m)) = self.decoder.next_message() {
                return Some(m);
            }
            let read =
                tokio::time::timeout(Duration::from_secs(10), self.recv.read(&mut buf)).await;
            match read {
                Ok(Ok(Some(n))) => self.decoder.push(&buf[..n]),
                _ => return None,
            }
        }
    }

    /// The code the target closed the connection with (waits up to 10 s).
    pub async fn closed_with(&self) -> Option<ErrorCode> {
        let reason = tokio::time::timeout(Duration::from_secs(10), self.conn.closed())
            .await
            .ok()?;
        match reason {
            quinn::ConnectionError::ApplicationClosed(close) => {
                ErrorCode::from_code(close.error_code.into_inner())
            }
            _ => None,
        }
    }
}
