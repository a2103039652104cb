//! Who an agent is and which group it joins: one small trait, [`AgentAuthenticator`], with
//! three implementations chained in this order: the config's inline credentials
//! ([`Inline`]), a credentials file re-read when it changes ([`CredentialsFile`]), and an
//! external HTTP check ([`AuthUrlCheck`]). The first that grants wins; nobody granting is a
//! refusal.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;

use crate::auth::password::Verifier;
use crate::config::gateway::{
    AuthUrl, CredentialSecret, GatewayConfig, GatewayCredential, load_credentials_file,
};

/// argon2 verifications running at once.
const PARALLEL_VERIFICATIONS: usize = 2;

/// Largest answer read from the `auth_url` service.
const MAX_ANSWER: usize = 16 * 1024;

/// What an agent presented.
#[derive(Clone, PartialEq, Eq)]
pub enum Presented {
    /// `Authorization: Basic`, or the JSON `auth` message.
    Basic {
        /// User name.
        username: String,
        /// Password.
        password: Vec<u8>,
    },
    /// `Authorization: Bearer`.
    Bearer(String),
    /// A verified client certificate's identity (CN, else the first DNS SAN).
    Certificate(String),
}

impl std::fmt::Debug for Presented {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Basic { username, .. } => write!(f, "Basic({username:?})"),
            Self::Bearer(_) => f.write_str("Bearer(<redacted>)"),
            Self::Certificate(id) => write!(f, "Certificate({id:?})"),
        }
    }
}

impl Presented {
    /// The identity to show in logs and the admin API (never a secret).
    pub fn identity(&self) -> &str {
        match self {
            Self::Basic { username, .. } => username,
            Self::Bearer(_) => "<token>",
            Self::Certificate(id) => id,
        }
    }
}

/// One authentication attempt.
#[derive(Debug, Clone)]
pub struct AuthRequest {
    /// The credentials.
    pub presented: Presented,
    /// The client id the agent gave (`X-Client-ID` or the `auth` message).
    pub client_id: Option<String>,
    /// The agent's address.
    pub peer: SocketAddr,
}

/// A granted authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Granted {
    /// The agent group it joins.
    pub group: String,
}

/// A boxed future of an authentication answer.
pub type AuthFuture<'a> = Pin<Box<dyn Future<Output = Option<Granted>> + Send + 'a>>;

/// Decides whether an agent may connect and to which group.
pub trait AgentAuthenticator: Send + Sync + std::fmt::Debug {
    /// `Some` when this authenticator grants the request; `None` passes it on (unknown
    /// credentials, wrong secret, or a failed check).
    fn check<'a>(&'a self, request: &'a AuthRequest) -> AuthFuture<'a>;
}

/// Builds the chain for a gateway's settings.
pub fn chain(config: &GatewayConfig) -> Chain {
    let slots = Arc::new(Semaphore::new(PARALLEL_VERIFICATIONS));
    let mut links: Vec<Box<dyn AgentAuthenticator>> = Vec::new();
    if !config.credentials.is_empty() {
        links.push(Box::new(Inline::new(&config.credentials, slots.clone())));
    }
    if let Some(path) = &config.credentials_file {
        links.push(Box::new(CredentialsFile::new(
            path.clone(),
            config.mtls,
            slots,
        )));
    }
    if let Some(url) = &config.auth_url {
        links.push(Box::new(AuthUrlCheck::new(url.clone())));
    }
    Chain { links }
}

/// Authenticators asked in order.
#[derive(Debug)]
pub struct Chain {
    links: Vec<Box<dyn AgentAuthenticator>>,
}

impl AgentAuthenticator for Chain {
    fn check<'a>(&'a self, request: &'a AuthRequest) -> AuthFuture<'a> {
        Box::pin(async move {
            for link in &self.links {
                if let Some(granted) = link.check(request).await {
                    return Some(granted);
                }
            }
            None
        })
    }
}

/// A credential ready to check.
#[derive(Debug)]
struct Entry {
    credential: GatewayCredential,
    verifier: Option<Verifier>,
}

/// Credentials held in memory (the config's, or a file's).
#[derive(Debug)]
pub struct Inline {
    entries: Vec<Entry>,
    dummy: Option<Verifier>,
    slots: Arc<Semaphore>,
}

impl Inline {
    /// Verifiers for `credentials`; `slots` bounds argon2 runs.
    pub fn new(credentials: &[GatewayCredential], slots: Arc<Semaphore>) -> Self {
        let entries = credentials
            .iter()
            .map(|c| Entry {
                verifier: match &c.secret {
                    CredentialSecret::Password(p) => Some(Verifier::new(p)),
                    _ => None,
                },
                credential: c.clone(),
            })
            .collect();
        // Unknown names cost what a wrong password costs.
        let dummy = credentials.iter().find_map(|c| match &c.secret {
            CredentialSecret::Password(p) if p.is_hash() => Some(Verifier::dummy_like(p)),
            _ => None,
        });
        Self {
            entries,
            dummy,
            slots,
        }
    }

    async fn run(&self, verifier: &Verifier, password: &[u8]) -> bool {
        if let Some(answer) = verifier.quick(password) {
            return answer;
        }
        let Ok(_slot) = self.slots.acquire().await else {
            return false;
        };
        verifier.slow(password).await
    }

    fn client_ok(credential: &GatewayCredential, request: &AuthRequest) -> bool {
        match &credential.client_id {
            None => true,
            Some(want) => request.client_id.as_deref() == Some(want.as_str()),
        }
    }
}

impl AgentAuthenticator for Inline {
    fn check<'a>(&'a self, request: &'a AuthRequest) -> AuthFuture<'a> {
        Box::pin(async move {
            match &request.presented {
                Presented::Basic { username, password } => {
                    let mut tried = false;
                    for entry in &self.entries {
                        let Some(verifier) = &entry.verifier else {
                            continue;
                        };
                        let name = entry.credential.username.as_deref().unwrap_or("");
                        if !bool::from(name.as_bytes().ct_eq(username.as_bytes())) {
                            continue;
                        }
                        tried = true;
                        if self.run(verifier, password).await
                            && Self::client_ok(&entry.credential, request)
                        {
                            return Some(granted(&entry.credential));
                        }
                    }
                    if !tried && let Some(dummy) = &self.dummy {
                        let _ = self.run(dummy, password).await;
                    }
                    None
                }
                Presented::Bearer(token) => {
                    let mut found = None;
                    // Compare with every token so the time does not say which one matched.
                    for entry in &self.entries {
                        if let CredentialSecret::Token(known) = &entry.credential.secret
                            && bool::from(known.as_bytes().ct_eq(token.as_bytes()))
                            && Self::client_ok(&entry.credential, request)
                        {
                            found = Some(granted(&entry.credential));
                        }
                    }
                    found
                }
                Presented::Certificate(identity) => self
                    .entries
                    .iter()
                    .find(|e| {
                        e.credential.secret == CredentialSecret::Certificate
                            && e.credential.username.as_deref() == Some(identity.as_str())
                            && Self::client_ok(&e.credential, request)
                    })
                    .map(|e| granted(&e.credential)),
            }
        })
    }
}

fn granted(credential: &GatewayCredential) -> Granted {
    Granted {
        group: credential.group.clone(),
    }
}

/// A credentials file, re-read when its modification time changes. A file that turns
/// unreadable or invalid keeps the last good entries (and says so in the log).
#[derive(Debug)]
pub struct CredentialsFile {
    path: PathBuf,
    mtls: bool,
    slots: Arc<Semaphore>,
    loaded: Mutex<(Option<SystemTime>, Arc<Inline>)>,
}

impl CredentialsFile {
    /// Watches `path`.
    pub fn new(path: PathBuf, mtls: bool, slots: Arc<Semaphore>) -> Self {
        let empty = Arc::new(Inline::new(&[], slots.clone()));
        Self {
            path,
            mtls,
            slots,
            loaded: Mutex::new((None, empty)),
        }
    }

    /// The entries now, re-reading the file if it changed.
    fn current(&self) -> Arc<Inline> {
        let modified = std::fs::metadata(&self.path)
            .and_then(|m| m.modified())
            .ok();
        let mut loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        if modified.is_some() && modified != loaded.0 {
            match load_credentials_file("credentials_file", &self.path, self.mtls) {
                Ok(entries) => {
                    tracing::info!(file = %self.path.display(), entries = entries.len(), "agent credentials loaded");
                    *loaded = (
                        modified,
                        Arc::new(Inline::new(&entries, self.slots.clone())),
                    );
                }
                Err(e) => {
                    tracing::warn!(file = %self.path.display(), error = %e, "agent credentials file not applied; keeping the previous entries");
                    loaded.0 = modified;
                }
            }
        }
        loaded.1.clone()
    }
}

impl AgentAuthenticator for CredentialsFile {
    fn check<'a>(&'a self, request: &'a AuthRequest) -> AuthFuture<'a> {
        Box::pin(async move {
            let inline = self.current();
            inline.check(request).await
        })
    }
}

/// The external check: POST `{username, password | token, client_id, peer}` as JSON; a 200
/// answer with `{"group": "…"}` grants, anything else (or no answer in time) refuses.
#[derive(Debug)]
pub struct AuthUrlCheck {
    url: AuthUrl,
}

impl AuthUrlCheck {
    /// A check against `url`.
    pub fn new(url: AuthUrl) -> Self {
        Self { url }
    }

    async fn ask(&self, body: String) -> Result<Option<Granted>, String> {
        use http_body_util::{BodyExt, Full, Limited};
        let tcp = tokio::net::TcpStream::connect((self.url.host.as_str(), self.url.port))
            .await
            .map_err(|e| e.to_string())?;
        let io = hyper_util::rt::TokioIo::new(tcp);
        let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|e| e.to_string())?;
        let driver = tokio::spawn(connection);
        let authority = match self.url.uri.authority() {
            Some(a) => a.as_str().to_owned(),
            None => self.url.host.clone(),
        };
        let path = self
            .url
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned();
        let request = hyper::Request::post(path)
            .header(hyper::header::HOST, authority)
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(hyper::body::Bytes::from(body)))
            .map_err(|e| e.to_string())?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string());
        let result = match response {
            Ok(response) if response.status() == hyper::StatusCode::OK => {
                let bytes = Limited::new(response.into_body(), MAX_ANSWER)
                    .collect()
                    .await
                    .map_err(|e| e.to_string())?
                    .to_bytes();
                #[derive(serde::Deserialize)]
                struct Answer {
                    group: String,
                }
                let answer: Answer = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
                let valid = !answer.group.is_empty()
                    && answer.group.len() <= 64
                    && answer
                        .group
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'));
                if !valid {
                    return Err(format!("invalid group {:?}", answer.group));
                }
                Ok(Some(Granted {
                    group: answer.group,
                }))
            }
            Ok(_) => Ok(None),
            Err(e) => Err(e),
        };
        driver.abort();
        result
    }
}

impl AgentAuthenticator for AuthUrlCheck {
    fn check<'a>(&'a self, request: &'a AuthRequest) -> AuthFuture<'a> {
        Box::pin(async move {
            let mut body = serde_json::json!({
                "client_id": request.client_id,
                "peer": request.peer.to_string(),
            });
            match &request.presented {
                Presented::Basic { username, password } => {
                    body["username"] = username.as_str().into();
                    body["password"] = String::from_utf8_lossy(password).into_owned().into();
                }
                Presented::Bearer(token) => body["token"] = token.as_str().into(),
                Presented::Certificate(identity) => {
                    body["username"] = identity.as_str().into();
                    body["certificate"] = true.into();
                }
            }
            match tokio::time::timeout(self.url.timeout, self.ask(body.to_string())).await {
                Ok(Ok(answer)) => answer,
                Ok(Err(e)) => {
                    tracing::warn!(url = %self.url.uri, error = %e, "agent authentication check failed");
                    None
                }
                Err(_) => {
                    tracing::warn!(url = %self.url.uri, "agent authentication check timed out");
                    None
                }
            }
        })
    }
}
