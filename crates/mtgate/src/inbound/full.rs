//! Answering the clients of a listener that is full: a short HTTP answer, written off the
//! accept loop and in bounded number.
//!
//! Each answer is a task that may wait on the client (a TLS handshake first for wss, then the
//! write), so a flood against a full listener could otherwise pile up thousands of them, each
//! with a socket and TLS state. Past [`PENDING_ANSWERS`] answers under way, a refused client
//! is closed at once instead.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_util::task::TaskTracker;

use crate::gate::Gate;

/// Answers a full listener writes at a time.
pub const PENDING_ANSWERS: usize = 64;

/// How long a refused client gets to take its answer, TLS handshake included.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(4);

/// Answers that one accept loop has under way.
#[derive(Debug, Default)]
pub struct FullAnswers {
    pending: Arc<Gate>,
}

impl FullAnswers {
    /// Sends `answer` to `stream` (over TLS when `tls` is set) and closes it, off the accept
    /// loop and within [`ANSWER_TIMEOUT`]; or closes it at once while [`PENDING_ANSWERS`]
    /// answers are already under way.
    pub fn send(
        &self,
        stream: TcpStream,
        tls: Option<Arc<rustls::ServerConfig>>,
        answer: Vec<u8>,
        tracker: &TaskTracker,
    ) {
        let Some(place) = self.pending.try_enter(PENDING_ANSWERS) else {
            tracing::debug!("too many refusals under way: closing without an answer");
            return;
        };
        tracker.spawn(async move {
            let _place = place;
            let _ = tokio::time::timeout(ANSWER_TIMEOUT, write(stream, tls, &answer)).await;
        });
    }

    /// Answers under way.
    pub fn pending(&self) -> usize {
        self.pending.open()
    }
}

async fn write(stream: TcpStream, tls: Option<Arc<rustls::ServerConfig>>, answer: &[u8]) {
    match tls {
        None => {
            let mut stream = stream;
            let _ = stream.write_all(answer).await;
            let _ = stream.shutdown().await;
        }
        Some(tls) => {
            if let Ok(mut stream) = tokio_rustls::TlsAcceptor::from(tls).accept(stream).await {
                let _ = stream.write_all(answer).await;
                let _ = stream.shutdown().await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;

    /// Accepted server sides of `n` client connections that never send anything.
    async fn silent_clients(n: usize) -> (Vec<TcpStream>, Vec<TcpStream>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (mut clients, mut accepted) = (Vec::new(), Vec::new());
        for _ in 0..n {
            clients.push(TcpStream::connect(addr).await.unwrap());
            accepted.push(listener.accept().await.unwrap().0);
        }
        (clients, accepted)
    }

    /// A TLS server configuration with a fresh certificate for 127.0.0.1, and a client
    /// configuration that trusts it.
    fn test_tls() -> (Arc<rustls::ServerConfig>, Arc<rustls::ClientConfig>) {
        use rustls::pki_types::pem::PemObject;
        let (cert, key) = crate::commands::cert::generate(&["127.0.0.1".into()]).unwrap();
        let der = rustls::pki_types::CertificateDer::from_pem_slice(cert.as_bytes()).unwrap();
        let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let server = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![der.clone()], key)
            .unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(der).unwrap();
        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        (Arc::new(server), Arc::new(client))
    }

    #[tokio::test]
    async fn past_the_cap_a_refused_client_is_closed_at_once() {
        let (tls, _) = test_tls();
        let answers = FullAnswers::default();
        let tracker = TaskTracker::new();
        let (mut clients, accepted) = silent_clients(PENDING_ANSWERS + 8).await;
        for stream in accepted {
            answers.send(
                stream,
                Some(tls.clone()),
                b"HTTP/1.1 503\r\n\r\n".to_vec(),
                &tracker,
            );
        }
        // The first ones wait for a TLS ClientHello that never comes...
        assert_eq!(answers.pending(), PENDING_ANSWERS);
        // ...and the rest are closed without waiting.
        for client in clients.iter_mut().skip(PENDING_ANSWERS) {
            let mut byte = [0u8; 1];
            let read = tokio::time::timeout(Duration::from_secs(1), client.read(&mut byte));
            assert!(matches!(read.await, Ok(Ok(0)) | Ok(Err(_))));
        }
        let mut byte = [0u8; 1];
        let first = tokio::time::timeout(Duration::from_millis(200), clients[0].read(&mut byte));
        assert!(
            first.await.is_err(),
            "an answer under way still waits for its client"
        );
        tracker.close();
        drop(clients);
        tokio::time::timeout(ANSWER_TIMEOUT * 2, tracker.wait())
            .await
            .unwrap();
        assert_eq!(answers.pending(), 0);
    }

    #[tokio::test]
    async fn plain_answers_arrive_whole() {
        let answers = FullAnswers::default();
        let tracker = TaskTracker::new();
        let (mut clients, accepted) = silent_clients(1).await;
        answers.send(
            accepted.into_iter().next().unwrap(),
            None,
            b"HTTP/1.1 503 Busy\r\n\r\n".to_vec(),
            &tracker,
        );
        let mut got = Vec::new();
        let reading = clients[0].read_to_end(&mut got);
        tokio::time::timeout(Duration::from_secs(2), reading)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got, b"HTTP/1.1 503 Busy\r\n\r\n");
    }

    #[tokio::test]
    async fn a_tls_client_reads_the_answer_over_tls() {
        let (server, client) = test_tls();
        let answers = FullAnswers::default();
        let tracker = TaskTracker::new();
        let (clients, accepted) = silent_clients(1).await;
        let stream = accepted.into_iter().next().unwrap();
        let answer = b"HTTP/1.1 503 Service Unavailable\r\n\r\n".to_vec();
        answers.send(stream, Some(server), answer.clone(), &tracker);
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let tcp = clients.into_iter().next().unwrap();
        let connecting = tokio_rustls::TlsConnector::from(client).connect(name, tcp);
        let mut tls = tokio::time::timeout(Duration::from_secs(2), connecting)
            .await
            .unwrap()
            .unwrap();
        let mut got = Vec::new();
        let reading = tls.read_to_end(&mut got);
        tokio::time::timeout(Duration::from_secs(2), reading)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got, answer);
    }
}
