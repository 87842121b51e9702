//! A client of the OCI distribution API over hyper: resolve, pull, push.
//!
//! Small on purpose: manifests by tag or digest with every `Accept` type this crate reads,
//! blobs streamed into the store and checked against their digest, monolithic pushes
//! (`HEAD` to skip what exists, `POST` then `PUT` with the digest, manifests `PUT` by tag).
//!
//! Transport. Registries on this machine (`localhost`, `127.0.0.0/8`, `[::1]`) and those
//! declared insecure are spoken to over plain HTTP; others over HTTPS, which needs the crate's
//! `tls` feature (rustls with the ring provider and webpki roots) — without it the error says
//! so. Connection errors, timeouts, `429` and `5xx` are retried with exponential back-off
//! ([`RetryPolicy`]); `4xx` are final, since asking again cannot change the answer.
//!
//! Authentication follows the registry's `WWW-Authenticate` challenge (see [`crate::auth`]):
//! the scheme learnt per registry is reused, so after the first exchange a request carries its
//! credential or cached bearer token and costs one round trip.
//!
//! Errors say which of the things a user can act on went wrong: not found, unreachable, bad
//! credentials, no access, a corrupt blob, a server failure.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::header::{
    ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, LOCATION, USER_AGENT, WWW_AUTHENTICATE,
};
use http::{Method, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::TokioExecutor;
use std::io::Write as _;

use crate::auth::{
    Challenge, Credential, Keychain, TokenCache, TokenResponse, parse_challenge, repository_scope,
};
use crate::digest::Digest;
use crate::manifest::{Descriptor, Manifest, ManifestError, media};
use crate::reference::{Reference, is_loopback_host};
use crate::store::{Store, StoreError};

/// Manifests and token answers larger than this are refused (Docker's own limit is 4 MiB).
pub const MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;
const MAX_ERROR_BODY: usize = 64 * 1024;
const MAX_REDIRECTS: usize = 5;

/// Errors of talking to a registry.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(
        "cannot reach registry {registry}: {detail}; check that it runs and that the address is right"
    )]
    Unreachable { registry: String, detail: String },
    #[error("registry {registry} did not answer {what} within {seconds} s")]
    Timeout {
        registry: String,
        what: String,
        seconds: u64,
    },
    #[error(
        "registry {registry} is reached over HTTPS, which needs wisp-oci's `tls` feature; build with it, or declare the registry insecure if it serves plain HTTP"
    )]
    TlsDisabled { registry: String },
    #[error("image {reference} not found: {detail}")]
    NotFound { reference: String, detail: String },
    #[error(
        "registry {registry} requires credentials for {repository} and none were given: add an entry for {registry} to the docker config.json the daemon reads ($DOCKER_CONFIG or ~/.docker)"
    )]
    AuthRequired {
        registry: String,
        repository: String,
    },
    #[error(
        "registry {registry} refused the credentials of user {user:?}: check the username and password of the docker config.json entry for {registry}"
    )]
    BadCredentials { registry: String, user: String },
    #[error("access to {repository} on registry {registry} is denied: {detail}")]
    Denied {
        registry: String,
        repository: String,
        detail: String,
    },
    #[error("registry {registry} answered {status} to {what}: {detail}")]
    Status {
        registry: String,
        what: String,
        status: u16,
        detail: String,
    },
    #[error(
        "{what} from registry {registry} does not match its digest (expected {expected}, got {actual}): the registry's copy is corrupt; delete it from the registry (a push skips blobs the registry says it has) and push the image again"
    )]
    DigestMismatch {
        registry: String,
        what: String,
        expected: Digest,
        actual: Digest,
    },
    #[error(
        "{what} from registry {registry} has {actual} bytes, but its descriptor says {expected}"
    )]
    SizeMismatch {
        registry: String,
        what: String,
        expected: u64,
        actual: u64,
    },
    #[error("the token server {realm} of registry {registry} failed: {detail}")]
    TokenServer {
        registry: String,
        realm: String,
        detail: String,
    },
    #[error("{what} from registry {registry} is larger than {limit} bytes")]
    TooLarge {
        registry: String,
        what: String,
        limit: usize,
    },
    #[error("registry {registry}: {detail}")]
    Protocol { registry: String, detail: String },
    #[error("{reference}: {source}")]
    Manifest {
        reference: String,
        #[source]
        source: ManifestError,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Retries of transient failures: `attempts` tries in all, waiting `base`, `2·base`, ...
/// (at most `max`) in between.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub base: Duration,
    pub max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 4,
            base: Duration::from_millis(200),
            max: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// The wait after failed try number `failed` (1-based), or `None` when no try is left.
    pub fn delay(&self, failed: u32) -> Option<Duration> {
        if failed >= self.attempts {
            return None;
        }
        let factor = 1u32
            .checked_shl(failed.saturating_sub(1))
            .unwrap_or(u32::MAX);
        Some(self.base.saturating_mul(factor).min(self.max))
    }

    /// Whether an answer with `status` is worth another try.
    pub fn retryable(status: StatusCode) -> bool {
        status.is_server_error()
            || status == StatusCode::TOO_MANY_REQUESTS
            || status == StatusCode::REQUEST_TIMEOUT
    }
}

/// Settings of a [`Client`].
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Registries (host[:port]) spoken to over plain HTTP although not on loopback.
    pub insecure: Vec<String>,
    pub retry: RetryPolicy,
    /// Time to wait for the head of an answer, and between two chunks of a body.
    pub timeout: Duration,
    pub user_agent: String,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            insecure: Vec::new(),
            retry: RetryPolicy::default(),
            timeout: Duration::from_secs(30),
            user_agent: concat!("wisp/", env!("CARGO_PKG_VERSION")).to_string(),
        }
    }
}

#[cfg(feature = "tls")]
type Connector = hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>;
#[cfg(not(feature = "tls"))]
type Connector = hyper_util::client::legacy::connect::HttpConnector;

#[derive(Debug, Clone)]
enum Scheme {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

/// The registry client. Cheap to share (`Arc`), one per daemon.
pub struct Client {
    http: HyperClient<Connector, Full<Bytes>>,
    config: ClientConfig,
    tokens: Mutex<TokenCache<tokio::time::Instant>>,
    schemes: Mutex<HashMap<String, Scheme>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("config", &self.config)
            .finish()
    }
}

/// One request, rebuilt for each try.
struct Req {
    method: Method,
    url: String,
    headers: Vec<(http::HeaderName, String)>,
    body: Bytes,
}

impl Req {
    fn new(method: Method, url: String) -> Self {
        Req {
            method,
            url,
            headers: Vec::new(),
            body: Bytes::new(),
        }
    }

    fn header(mut self, name: http::HeaderName, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
}

/// Who a request is for: the image's registry and repository, and the credential to use.
struct Target<'a> {
    reference: &'a Reference,
    credential: Option<&'a Credential>,
    scope: String,
}

impl Client {
    pub fn new(config: ClientConfig) -> Client {
        let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
        http.set_nodelay(true);
        http.set_connect_timeout(Some(config.timeout));
        #[cfg(feature = "tls")]
        let connector = {
            http.enforce_http(false);
            let builder = hyper_rustls::HttpsConnectorBuilder::new();
            let builder = match builder
                .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())
            {
                Ok(b) => b,
                // The ring provider supports the default protocol versions; this is unreachable
                // in practice, and the plain webpki builder is the same configuration.
                Err(_) => hyper_rustls::HttpsConnectorBuilder::new().with_webpki_roots(),
            };
            builder.https_or_http().enable_http1().wrap_connector(http)
        };
        #[cfg(not(feature = "tls"))]
        let connector = http;
        let http = HyperClient::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Client {
            http,
            config,
            tokens: Mutex::new(TokenCache::new()),
            schemes: Mutex::new(HashMap::new()),
        }
    }

    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    fn scheme_for(&self, host: &str) -> &'static str {
        if is_loopback_host(host) || self.config.insecure.iter().any(|h| h == host) {
            "http"
        } else {
            "https"
        }
    }

    fn base_url(&self, reference: &Reference) -> String {
        let host = reference.api_host();
        format!(
            "{}://{}/v2/{}",
            self.scheme_for(reference.registry()),
            host,
            reference.repository()
        )
    }

    fn target<'a>(
        &self,
        reference: &'a Reference,
        keychain: &'a Keychain,
        push: bool,
    ) -> Target<'a> {
        Target {
            reference,
            credential: keychain.get(reference.registry(), reference.repository()),
            scope: repository_scope(reference.repository(), push),
        }
    }

    // ---- transport -------------------------------------------------------------------------

    /// Sends `req` with retries on transient failures. Answers are returned whatever their
    /// status, except retryable ones when tries are left.
    async fn execute(
        &self,
        registry: &str,
        what: &str,
        req: &Req,
        auth: Option<&str>,
    ) -> Result<Response<Incoming>, RegistryError> {
        #[cfg(not(feature = "tls"))]
        if req.url.starts_with("https://") {
            return Err(RegistryError::TlsDisabled {
                registry: registry.to_string(),
            });
        }
        let mut failed = 0;
        loop {
            let mut builder = Request::builder()
                .method(req.method.clone())
                .uri(req.url.as_str())
                .header(USER_AGENT, self.config.user_agent.as_str());
            for (name, value) in &req.headers {
                builder = builder.header(name, value.as_str());
            }
            if let Some(a) = auth {
                builder = builder.header(AUTHORIZATION, a);
            }
            let request =
                builder
                    .body(Full::new(req.body.clone()))
                    .map_err(|e| RegistryError::Protocol {
                        registry: registry.to_string(),
                        detail: format!("invalid request to {}: {e}", req.url),
                    })?;
            let outcome =
                tokio::time::timeout(self.config.timeout, self.http.request(request)).await;
            let failure = match outcome {
                Ok(Ok(resp)) if !RetryPolicy::retryable(resp.status()) => return Ok(resp),
                Ok(Ok(resp)) => {
                    failed += 1;
                    if self.config.retry.delay(failed).is_none() {
                        return Ok(resp);
                    }
                    tracing::debug!(registry, what, status = %resp.status(), "retrying");
                    None
                }
                Ok(Err(e)) => Some(RegistryError::Unreachable {
                    registry: registry.to_string(),
                    detail: error_chain(&e),
                }),
                Err(_) => Some(RegistryError::Timeout {
                    registry: registry.to_string(),
                    what: what.to_string(),
                    seconds: self.config.timeout.as_secs(),
                }),
            };
            if let Some(err) = failure {
                failed += 1;
                if self.config.retry.delay(failed).is_none() {
                    return Err(err);
                }
                tracing::debug!(registry, what, error = %err, "retrying");
            }
            if let Some(d) = self.config.retry.delay(failed) {
                tokio::time::sleep(d).await;
            }
        }
    }

    /// Sends a request to the registry of `target`, answering its authentication challenge.
    async fn send(
        &self,
        target: &Target<'_>,
        what: &str,
        make: impl Fn() -> Req,
    ) -> Result<Response<Incoming>, RegistryError> {
        let registry = target.reference.registry();
        let mut challenged = false;
        loop {
            let auth = self.authorization(target).await?;
            let resp = self
                .execute(registry, what, &make(), auth.as_deref())
                .await?;
            match resp.status() {
                StatusCode::UNAUTHORIZED if !challenged => {
                    challenged = true;
                    let header = resp
                        .headers()
                        .get(WWW_AUTHENTICATE)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string);
                    let detail = error_detail(resp).await;
                    match header.as_deref().and_then(parse_challenge) {
                        Some(challenge) => self.learn(target, challenge).await?,
                        None => {
                            return Err(RegistryError::Protocol {
                                registry: registry.to_string(),
                                detail: format!(
                                    "answered 401 to {what} without a usable WWW-Authenticate challenge: {detail}"
                                ),
                            });
                        }
                    }
                }
                StatusCode::UNAUTHORIZED => {
                    let detail = error_detail(resp).await;
                    return Err(self.refused(target, detail));
                }
                StatusCode::FORBIDDEN => {
                    let detail = error_detail(resp).await;
                    return Err(RegistryError::Denied {
                        registry: registry.to_string(),
                        repository: target.reference.repository().to_string(),
                        detail,
                    });
                }
                _ => return Ok(resp),
            }
        }
    }

    fn refused(&self, target: &Target<'_>, detail: String) -> RegistryError {
        let registry = target.reference.registry().to_string();
        match target.credential {
            None => RegistryError::AuthRequired {
                registry,
                repository: target.reference.repository().to_string(),
            },
            Some(c) if detail.contains("insufficient_scope") || detail.contains("DENIED") => {
                RegistryError::Denied {
                    registry,
                    repository: target.reference.repository().to_string(),
                    detail: format!("{detail} (user {:?})", c.username),
                }
            }
            Some(c) => RegistryError::BadCredentials {
                registry,
                user: c.username.clone(),
            },
        }
    }

    /// The `Authorization` value for a request, from what the registry asked for before.
    async fn authorization(&self, target: &Target<'_>) -> Result<Option<String>, RegistryError> {
        let registry = target.reference.registry();
        let scheme = self.lock_schemes().get(registry).cloned();
        match scheme {
            None => Ok(None),
            Some(Scheme::Basic) => Ok(target.credential.map(Credential::basic_header)),
            Some(Scheme::Bearer { realm, service }) => {
                let now = tokio::time::Instant::now();
                if let Some(t) = self.lock_tokens().get(registry, &target.scope, now) {
                    return Ok(Some(format!("Bearer {t}")));
                }
                let token = self.fetch_token(target, &realm, service.as_deref()).await?;
                Ok(Some(format!("Bearer {token}")))
            }
        }
    }

    /// Takes in a challenge: remembers the scheme, and for Bearer gets a fresh token.
    async fn learn(&self, target: &Target<'_>, challenge: Challenge) -> Result<(), RegistryError> {
        let registry = target.reference.registry();
        match challenge {
            Challenge::Basic { .. } => {
                if target.credential.is_none() {
                    return Err(RegistryError::AuthRequired {
                        registry: registry.to_string(),
                        repository: target.reference.repository().to_string(),
                    });
                }
                self.lock_schemes()
                    .insert(registry.to_string(), Scheme::Basic);
            }
            Challenge::Bearer { realm, service, .. } => {
                self.lock_tokens().remove(registry, &target.scope);
                self.lock_schemes().insert(
                    registry.to_string(),
                    Scheme::Bearer {
                        realm: realm.clone(),
                        service: service.clone(),
                    },
                );
                self.fetch_token(target, &realm, service.as_deref()).await?;
            }
        }
        Ok(())
    }

    /// Gets a bearer token for the target's scope from `realm` (with the credential, if
    /// any, as Basic) and caches it.
    async fn fetch_token(
        &self,
        target: &Target<'_>,
        realm: &str,
        service: Option<&str>,
    ) -> Result<String, RegistryError> {
        let registry = target.reference.registry();
        let token_err = |detail: String| RegistryError::TokenServer {
            registry: registry.to_string(),
            realm: realm.to_string(),
            detail,
        };
        let mut url = realm.to_string();
        let mut sep = if url.contains('?') { '&' } else { '?' };
        if let Some(s) = service {
            url.push(sep);
            url.push_str("service=");
            url.push_str(&percent_encode(s));
            sep = '&';
        }
        url.push(sep);
        url.push_str("scope=");
        url.push_str(&percent_encode(&target.scope));
        let auth = target.credential.map(Credential::basic_header);
        let resp = self
            .execute(
                registry,
                "a token request",
                &Req::new(Method::GET, url),
                auth.as_deref(),
            )
            .await?;
        let status = resp.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            let detail = error_detail(resp).await;
            return Err(match target.credential {
                Some(c) => RegistryError::BadCredentials {
                    registry: registry.to_string(),
                    user: c.username.clone(),
                },
                None => RegistryError::Denied {
                    registry: registry.to_string(),
                    repository: target.reference.repository().to_string(),
                    detail,
                },
            });
        }
        if !status.is_success() {
            let detail = error_detail(resp).await;
            return Err(token_err(format!("answered {status}: {detail}")));
        }
        let body = read_limited(
            registry,
            "a token",
            resp,
            MAX_MANIFEST_BYTES,
            self.config.timeout,
        )
        .await?;
        let parsed: TokenResponse =
            serde_json::from_slice(&body).map_err(|e| token_err(format!("invalid answer: {e}")))?;
        let (token, lifetime) = parsed
            .into_token()
            .ok_or_else(|| token_err("the answer has no token".to_string()))?;
        self.lock_tokens().put(
            registry,
            &target.scope,
            token.clone(),
            lifetime,
            tokio::time::Instant::now(),
        );
        Ok(token)
    }

    fn lock_tokens(&self) -> std::sync::MutexGuard<'_, TokenCache<tokio::time::Instant>> {
        self.tokens.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_schemes(&self) -> std::sync::MutexGuard<'_, HashMap<String, Scheme>> {
        self.schemes.lock().unwrap_or_else(|p| p.into_inner())
    }

    // ---- pull ------------------------------------------------------------------------------

    /// The digest `reference` names now: its own digest, else the tag's (from the
    /// `Docker-Content-Digest` header of a `HEAD`, else the sha256 of the manifest).
    pub async fn resolve(
        &self,
        reference: &Reference,
        keychain: &Keychain,
    ) -> Result<Digest, RegistryError> {
        if let Some(d) = reference.digest() {
            return Ok(d.clone());
        }
        let target = self.target(reference, keychain, false);
        let url = format!(
            "{}/manifests/{}",
            self.base_url(reference),
            reference.api_reference()
        );
        let resp = self
            .send(&target, "a manifest request", || {
                Req::new(Method::HEAD, url.clone()).header(ACCEPT, media::MANIFEST_ACCEPT)
            })
            .await?;
        let resp = self.check(reference, "the manifest", resp).await?;
        if let Some(d) = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<Digest>().ok())
        {
            return Ok(d);
        }
        let (bytes, _) = self.fetch_manifest(reference, keychain).await?;
        Ok(Digest::of(&bytes))
    }

    /// Fetches the manifest `reference` names (by digest if it has one, then checked against
    /// it). Returns its bytes and `Content-Type`.
    pub async fn fetch_manifest(
        &self,
        reference: &Reference,
        keychain: &Keychain,
    ) -> Result<(Bytes, Option<String>), RegistryError> {
        let target = self.target(reference, keychain, false);
        let url = format!(
            "{}/manifests/{}",
            self.base_url(reference),
            reference.api_reference()
        );
        let resp = self
            .send(&target, "a manifest request", || {
                Req::new(Method::GET, url.clone()).header(ACCEPT, media::MANIFEST_ACCEPT)
            })
            .await?;
        let resp = self.check(reference, "the manifest", resp).await?;
        let content_type = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let bytes = read_limited(
            reference.registry(),
            "a manifest",
            resp,
            MAX_MANIFEST_BYTES,
            self.config.timeout,
        )
        .await?;
        if let Some(expected) = reference.digest() {
            let actual = Digest::of(&bytes);
            if &actual != expected {
                return Err(RegistryError::DigestMismatch {
                    registry: reference.registry().to_string(),
                    what: format!("manifest {expected}"),
                    expected: expected.clone(),
                    actual,
                });
            }
        }
        Ok((bytes, content_type))
    }

    /// Fetches and parses the manifest `digest` of `reference`'s repository, storing its bytes.
    pub async fn pull_manifest(
        &self,
        reference: &Reference,
        digest: &Digest,
        keychain: &Keychain,
        store: &Store,
    ) -> Result<Manifest, RegistryError> {
        let pinned = reference.pinned(digest.clone());
        let bytes = if store.has_blob(digest) {
            match store.read_blob(digest) {
                Ok(b) => Some(b),
                Err(StoreError::Corrupt { .. }) => None,
                Err(e) => return Err(e.into()),
            }
        } else {
            None
        };
        let (bytes, content_type) = match bytes {
            Some(b) => (Bytes::from(b), None),
            None => {
                let (b, ct) = self.fetch_manifest(&pinned, keychain).await?;
                store.put_blob(&b)?;
                (b, ct)
            }
        };
        Manifest::parse(content_type.as_deref(), &bytes).map_err(|source| RegistryError::Manifest {
            reference: pinned.to_string(),
            source,
        })
    }

    /// Streams blob `desc` of `reference`'s repository into the store, checking size and
    /// digest. Does nothing if the store has it.
    pub async fn pull_blob(
        &self,
        reference: &Reference,
        desc: &Descriptor,
        keychain: &Keychain,
        store: &Store,
        progress: Option<&AtomicU64>,
    ) -> Result<(), RegistryError> {
        if store.has_blob(&desc.digest) {
            return Ok(());
        }
        let registry = reference.registry();
        let what = format!("blob {}", desc.digest);
        let target = self.target(reference, keychain, false);
        let url = format!("{}/blobs/{}", self.base_url(reference), desc.digest);
        let mut failed = 0;
        loop {
            let resp = self
                .send(&target, &what, || Req::new(Method::GET, url.clone()))
                .await?;
            let resp = self.follow_redirects(registry, &what, resp).await?;
            let resp = self.check(reference, &what, resp).await?;
            match self
                .stream_to_store(registry, &what, desc, resp, store, progress)
                .await
            {
                Ok(()) => return Ok(()),
                // A body cut short: transient, the next try starts over.
                Err(e @ (RegistryError::Unreachable { .. } | RegistryError::Timeout { .. })) => {
                    failed += 1;
                    match self.config.retry.delay(failed) {
                        Some(d) => {
                            tracing::debug!(registry, %what, error = %e, "retrying blob");
                            tokio::time::sleep(d).await;
                        }
                        None => return Err(e),
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn stream_to_store(
        &self,
        registry: &str,
        what: &str,
        desc: &Descriptor,
        resp: Response<Incoming>,
        store: &Store,
        progress: Option<&AtomicU64>,
    ) -> Result<(), RegistryError> {
        let mut writer = store.blob_writer(Some((&desc.digest, Some(desc.size))))?;
        // Counted as it arrives; an attempt that fails takes its bytes back out.
        let mut counted = 0u64;
        let result = self
            .copy_body(
                registry,
                what,
                desc,
                resp,
                store,
                &mut writer,
                progress,
                &mut counted,
            )
            .await;
        if result.is_err()
            && let Some(p) = progress
        {
            p.fetch_sub(counted, Ordering::Relaxed);
        }
        result?;
        self.commit_blob(registry, what, writer).await
    }

    #[allow(clippy::too_many_arguments)]
    async fn copy_body(
        &self,
        registry: &str,
        what: &str,
        desc: &Descriptor,
        resp: Response<Incoming>,
        store: &Store,
        writer: &mut crate::store::BlobWriter,
        progress: Option<&AtomicU64>,
        counted: &mut u64,
    ) -> Result<(), RegistryError> {
        let mut body = resp.into_body();
        loop {
            let frame = match tokio::time::timeout(self.config.timeout, body.frame()).await {
                Err(_) => {
                    return Err(RegistryError::Timeout {
                        registry: registry.to_string(),
                        what: what.to_string(),
                        seconds: self.config.timeout.as_secs(),
                    });
                }
                Ok(None) => break,
                Ok(Some(Err(e))) => {
                    return Err(RegistryError::Unreachable {
                        registry: registry.to_string(),
                        detail: format!("reading {what}: {}", error_chain(&e)),
                    });
                }
                Ok(Some(Ok(f))) => f,
            };
            if let Ok(data) = frame.into_data() {
                // Page-cache writes of at most a frame: short enough for the async thread.
                writer.write_all(&data).map_err(|e| StoreError::Io {
                    what: "cannot write blob into",
                    path: store.root().join("tmp"),
                    source: e,
                })?;
                if let Some(p) = progress {
                    p.fetch_add(data.len() as u64, Ordering::Relaxed);
                    *counted += data.len() as u64;
                }
                if writer.len() > desc.size {
                    return Err(RegistryError::SizeMismatch {
                        registry: registry.to_string(),
                        what: what.to_string(),
                        expected: desc.size,
                        actual: writer.len(),
                    });
                }
            }
        }
        Ok(())
    }

    async fn commit_blob(
        &self,
        registry: &str,
        what: &str,
        writer: crate::store::BlobWriter,
    ) -> Result<(), RegistryError> {
        let committed = tokio::task::spawn_blocking(move || writer.commit())
            .await
            .map_err(|e| RegistryError::Protocol {
                registry: registry.to_string(),
                detail: format!("storing {what} failed: {e}"),
            })?;
        match committed {
            Ok(_) => Ok(()),
            Err(StoreError::Mismatch {
                expected, actual, ..
            }) => Err(RegistryError::DigestMismatch {
                registry: registry.to_string(),
                what: what.to_string(),
                expected,
                actual,
            }),
            Err(StoreError::SizeMismatch {
                expected, actual, ..
            }) => Err(RegistryError::SizeMismatch {
                registry: registry.to_string(),
                what: what.to_string(),
                expected,
                actual,
            }),
            Err(e) => Err(e.into()),
        }
    }

    /// Follows blob redirects (to storage services); credentials are not sent to other hosts.
    async fn follow_redirects(
        &self,
        registry: &str,
        what: &str,
        mut resp: Response<Incoming>,
    ) -> Result<Response<Incoming>, RegistryError> {
        for _ in 0..MAX_REDIRECTS {
            if !resp.status().is_redirection() {
                return Ok(resp);
            }
            let Some(location) = resp.headers().get(LOCATION).and_then(|v| v.to_str().ok()) else {
                return Ok(resp);
            };
            let url = location.to_string();
            resp = self
                .execute(registry, what, &Req::new(Method::GET, url), None)
                .await?;
        }
        Err(RegistryError::Protocol {
            registry: registry.to_string(),
            detail: format!("too many redirects fetching {what}"),
        })
    }

    /// Turns error statuses into errors; passes 2xx (and 3xx) answers.
    async fn check(
        &self,
        reference: &Reference,
        what: &str,
        resp: Response<Incoming>,
    ) -> Result<Response<Incoming>, RegistryError> {
        let status = resp.status();
        if status.is_success() || status.is_redirection() {
            return Ok(resp);
        }
        let detail = error_detail(resp).await;
        if status == StatusCode::NOT_FOUND {
            let detail = if detail.is_empty() {
                format!("{what} does not exist (404)")
            } else {
                detail
            };
            return Err(RegistryError::NotFound {
                reference: reference.to_string(),
                detail: format!("{detail}; check the repository name and tag"),
            });
        }
        Err(RegistryError::Status {
            registry: reference.registry().to_string(),
            what: format!("the request for {what}"),
            status: status.as_u16(),
            detail,
        })
    }

    // ---- push ------------------------------------------------------------------------------

    /// Pushes a blob of the store to `reference`'s repository unless the registry has it.
    pub async fn push_blob(
        &self,
        reference: &Reference,
        digest: &Digest,
        keychain: &Keychain,
        store: &Store,
    ) -> Result<(), RegistryError> {
        let registry = reference.registry();
        let target = self.target(reference, keychain, true);
        let base = self.base_url(reference);
        let what = format!("blob {digest}");
        let head_url = format!("{base}/blobs/{digest}");
        let resp = self
            .send(&target, &what, || Req::new(Method::HEAD, head_url.clone()))
            .await?;
        if resp.status().is_success() {
            return Ok(());
        }
        let path = store.blob_path(digest);
        let data = tokio::fs::read(&path).await.map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => StoreError::Missing {
                what: "blob",
                digest: digest.clone(),
            },
            _ => StoreError::Io {
                what: "cannot read",
                path: path.clone(),
                source: e,
            },
        })?;
        let data = Bytes::from(data);
        let actual = Digest::of(&data);
        if &actual != digest {
            let _ = tokio::fs::remove_file(&path).await;
            return Err(StoreError::Corrupt {
                digest: digest.clone(),
                actual,
            }
            .into());
        }
        let start_url = format!("{base}/blobs/uploads/");
        let resp = self
            .send(&target, "an upload request", || {
                Req::new(Method::POST, start_url.clone()).header(CONTENT_LENGTH, "0")
            })
            .await?;
        let resp = self.check(reference, "an upload", resp).await?;
        let location = resp
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| RegistryError::Protocol {
                registry: registry.to_string(),
                detail: "an upload was started without a Location".to_string(),
            })?;
        let mut put_url = absolute_url(&base, location);
        put_url.push(if put_url.contains('?') { '&' } else { '?' });
        put_url.push_str("digest=");
        put_url.push_str(&percent_encode(&digest.to_string()));
        let len = data.len().to_string();
        let resp = self
            .send(&target, &what, || {
                let mut r = Req::new(Method::PUT, put_url.clone())
                    .header(CONTENT_TYPE, "application/octet-stream")
                    .header(CONTENT_LENGTH, len.clone());
                r.body = data.clone();
                r
            })
            .await?;
        self.check(reference, &what, resp).await?;
        Ok(())
    }

    /// Puts a manifest under `reference`'s tag (or digest); returns its digest.
    pub async fn push_manifest(
        &self,
        reference: &Reference,
        media_type: &str,
        bytes: Bytes,
        keychain: &Keychain,
    ) -> Result<Digest, RegistryError> {
        let target = self.target(reference, keychain, true);
        let url = format!(
            "{}/manifests/{}",
            self.base_url(reference),
            reference.api_reference()
        );
        let len = bytes.len().to_string();
        let resp = self
            .send(&target, "a manifest upload", || {
                let mut r = Req::new(Method::PUT, url.clone())
                    .header(CONTENT_TYPE, media_type)
                    .header(CONTENT_LENGTH, len.clone());
                r.body = bytes.clone();
                r
            })
            .await?;
        self.check(reference, "the manifest upload", resp).await?;
        Ok(Digest::of(&bytes))
    }
}

/// `location` made absolute against the registry's `base` URL.
fn absolute_url(base: &str, location: &str) -> String {
    if location.starts_with("http://") || location.starts_with("https://") {
        return location.to_string();
    }
    let origin = match base.parse::<Uri>() {
        Ok(u) => format!(
            "{}://{}",
            u.scheme_str().unwrap_or("http"),
            u.authority().map(|a| a.as_str()).unwrap_or("")
        ),
        Err(_) => String::new(),
    };
    if location.starts_with('/') {
        format!("{origin}{location}")
    } else {
        format!("{base}/{location}")
    }
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        let t = inner.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = inner.source();
    }
    s
}

async fn read_limited(
    registry: &str,
    what: &str,
    resp: Response<Incoming>,
    limit: usize,
    timeout: Duration,
) -> Result<Bytes, RegistryError> {
    let mut body = resp.into_body();
    let mut out = Vec::new();
    loop {
        match tokio::time::timeout(timeout, body.frame()).await {
            Err(_) => {
                return Err(RegistryError::Timeout {
                    registry: registry.to_string(),
                    what: what.to_string(),
                    seconds: timeout.as_secs(),
                });
            }
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                return Err(RegistryError::Unreachable {
                    registry: registry.to_string(),
                    detail: format!("reading {what}: {}", error_chain(&e)),
                });
            }
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    if out.len() + data.len() > limit {
                        return Err(RegistryError::TooLarge {
                            registry: registry.to_string(),
                            what: what.to_string(),
                            limit,
                        });
                    }
                    out.extend_from_slice(&data);
                }
            }
        }
    }
    Ok(Bytes::from(out))
}

/// The registry's explanation of an error answer: `CODE: message` of its `errors` list, or
/// the start of the body.
async fn error_detail(resp: Response<Incoming>) -> String {
    let status = resp.status();
    let body = match read_limited("", "", resp, MAX_ERROR_BODY, Duration::from_secs(5)).await {
        Ok(b) => b,
        Err(_) => return status.to_string(),
    };
    describe_error_body(&body)
}

fn describe_error_body(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<ErrorItem>,
    }
    #[derive(serde::Deserialize)]
    struct ErrorItem {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    if let Ok(e) = serde_json::from_slice::<Errors>(body)
        && !e.errors.is_empty()
    {
        return e
            .errors
            .iter()
            .map(|i| format!("{}: {}", i.code, i.message))
            .collect::<Vec<_>>()
            .join("; ");
    }
    let text = String::from_utf8_lossy(body);
    text.trim().chars().take(300).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_schedule() {
        let p = RetryPolicy {
            attempts: 4,
            base: Duration::from_millis(100),
            max: Duration::from_millis(250),
        };
        let delays: Vec<_> = (1..=5).map(|n| p.delay(n)).collect();
        assert_eq!(
            delays,
            vec![
                Some(Duration::from_millis(100)),
                Some(Duration::from_millis(200)),
                Some(Duration::from_millis(250)),
                None,
                None
            ]
        );
        let once = RetryPolicy { attempts: 1, ..p };
        assert_eq!(once.delay(1), None);
        assert!(RetryPolicy::retryable(StatusCode::BAD_GATEWAY));
        assert!(RetryPolicy::retryable(StatusCode::TOO_MANY_REQUESTS));
        assert!(!RetryPolicy::retryable(StatusCode::NOT_FOUND));
        assert!(!RetryPolicy::retryable(StatusCode::UNAUTHORIZED));
    }

    #[test]
    fn urls() {
        let base = "http://127.0.0.1:5000/v2/site";
        assert_eq!(
            absolute_url(base, "/v2/site/blobs/uploads/abc?_state=x"),
            "http://127.0.0.1:5000/v2/site/blobs/uploads/abc?_state=x"
        );
        assert_eq!(absolute_url(base, "http://other/x"), "http://other/x");
        assert_eq!(
            percent_encode("repository:a/b:pull,push"),
            "repository%3Aa%2Fb%3Apull%2Cpush"
        );
        assert_eq!(percent_encode("sha256:ab"), "sha256%3Aab");
    }

    #[test]
    fn scheme_choice() {
        let c = Client::new(ClientConfig {
            insecure: vec!["reg.lan:5000".to_string()],
            ..Default::default()
        });
        let r = |s: &str| Reference::parse(s).unwrap();
        assert_eq!(
            c.base_url(&r("127.0.0.1:5000/a")),
            "http://127.0.0.1:5000/v2/a"
        );
        assert_eq!(c.base_url(&r("localhost/a")), "http://localhost/v2/a");
        assert_eq!(c.base_url(&r("reg.lan:5000/a")), "http://reg.lan:5000/v2/a");
        assert_eq!(
            c.base_url(&r("busybox")),
            "https://registry-1.docker.io/v2/library/busybox"
        );
    }

    #[test]
    fn error_bodies() {
        assert_eq!(
            describe_error_body(br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{}}]}"#),
            "MANIFEST_UNKNOWN: manifest unknown"
        );
        assert_eq!(describe_error_body(b"  plain text\n"), "plain text");
    }

    #[cfg(not(feature = "tls"))]
    #[tokio::test]
    async fn https_needs_the_tls_feature() {
        let c = Client::new(ClientConfig::default());
        let r = Reference::parse("ghcr.io/org/app:v1").unwrap();
        let e = c.resolve(&r, &Keychain::new()).await.unwrap_err();
        assert!(matches!(e, RegistryError::TlsDisabled { .. }), "{e}");
        assert!(e.to_string().contains("`tls` feature"));
    }
}
