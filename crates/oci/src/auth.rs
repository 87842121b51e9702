//! Registry credentials and the distribution API's authentication handshake.
//!
//! Credentials come from where Kubernetes and Docker users keep them: a docker `config.json`
//! (`auths` with a base64 `auth` or `username`/`password`), a Secret of type
//! `kubernetes.io/dockerconfigjson` (named in `imagePullSecrets`) or the legacy
//! `kubernetes.io/dockercfg`. A [`Keychain`] picks the credential for a registry and
//! repository the way the kubelet does (host match, `*.` wildcards, the longest path prefix).
//!
//! The handshake itself is the registry's to choose: a `401` carries a `WWW-Authenticate`
//! challenge, `Basic` (send the credential) or `Bearer` (get a token from its realm for a
//! scope, then send the token). [`parse_challenge`] reads the header; [`TokenCache`] keeps
//! tokens per registry and scope until shortly before they expire, on a clock the caller
//! passes in (so it is tested without sleeping). The HTTP calls are in `registry`.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;

use crate::reference::DOCKER_HUB;

/// A username and password (or token used as a password).
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    pub username: String,
    pub password: String,
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl Credential {
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        Credential {
            username: username.into(),
            password: password.into(),
        }
    }

    /// The `Authorization` header value for HTTP Basic.
    pub fn basic_header(&self) -> String {
        let raw = format!("{}:{}", self.username, self.password);
        format!("Basic {}", STANDARD.encode(raw))
    }
}

/// Errors of reading credentials.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("{source_name} is not a valid docker config: {detail}")]
    BadConfig { source_name: String, detail: String },
    #[error(
        "{source_name}: the `auth` entry for {registry:?} is not base64 of \"username:password\""
    )]
    BadAuthField {
        source_name: String,
        registry: String,
    },
    #[error(
        "Secret {name:?} has type {type_:?}; image pull secrets must be of type kubernetes.io/dockerconfigjson (key .dockerconfigjson) or kubernetes.io/dockercfg (key .dockercfg)"
    )]
    WrongSecretType { name: String, type_: String },
    #[error("Secret {name:?} of type {type_:?} has no {key:?} key")]
    MissingSecretKey {
        name: String,
        type_: String,
        key: String,
    },
    #[error("Secret {name:?}: the value of {key:?} is not valid base64")]
    SecretNotBase64 { name: String, key: String },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

#[derive(Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    host: String,
    path: String,
    credential: Credential,
}

/// Credentials by registry, looked up as the kubelet does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Keychain {
    entries: Vec<Entry>,
}

pub const SECRET_TYPE_DOCKERCONFIGJSON: &str = "kubernetes.io/dockerconfigjson";
pub const SECRET_TYPE_DOCKERCFG: &str = "kubernetes.io/dockercfg";

impl Keychain {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a credential for `registry` (a host, `*.host` or `host/path` prefix).
    pub fn insert(&mut self, registry: &str, credential: Credential) {
        let (host, path) = normalize_key(registry);
        self.entries.retain(|e| !(e.host == host && e.path == path));
        self.entries.push(Entry {
            host,
            path,
            credential,
        });
    }

    /// Adds everything of `other`; `other` wins on equal keys.
    pub fn extend(&mut self, other: Keychain) {
        for e in other.entries {
            self.entries
                .retain(|x| !(x.host == e.host && x.path == e.path));
            self.entries.push(e);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Reads a docker `config.json` / `.dockerconfigjson` (`{"auths": {...}}`) or a legacy
    /// `.dockercfg` (the map alone). `source_name` names the input in errors.
    pub fn from_docker_config(bytes: &[u8], source_name: &str) -> Result<Keychain, AuthError> {
        let bad = |detail: String| AuthError::BadConfig {
            source_name: source_name.to_string(),
            detail,
        };
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
        // A config.json or .dockerconfigjson has `auths`; a legacy .dockercfg is that map
        // itself (every value an entry with `auth` or `username`). Anything else, such as a
        // config.json with only `credsStore`, holds no credentials of its own.
        let is_entry =
            |v: &serde_json::Value| v.get("auth").is_some() || v.get("username").is_some();
        let map = match (value.get("auths"), value.as_object()) {
            (Some(auths), _) => auths.clone(),
            (None, Some(o)) if !o.is_empty() && o.values().all(is_entry) => value,
            _ => serde_json::Value::Object(Default::default()),
        };
        let entries: BTreeMap<String, AuthEntry> =
            serde_json::from_value(map).map_err(|e| bad(format!("`auths`: {e}")))?;
        let mut keychain = Keychain::new();
        for (registry, entry) in entries {
            let credential = match (&entry.auth, &entry.username, &entry.password) {
                (Some(auth), _, _) if !auth.is_empty() => {
                    let bad_auth = || AuthError::BadAuthField {
                        source_name: source_name.to_string(),
                        registry: registry.clone(),
                    };
                    let decoded = STANDARD.decode(auth.trim()).map_err(|_| bad_auth())?;
                    let text = String::from_utf8(decoded).map_err(|_| bad_auth())?;
                    let (u, p) = text.split_once(':').ok_or_else(bad_auth)?;
                    Credential::new(u, p)
                }
                (_, Some(u), Some(p)) => Credential::new(u.clone(), p.clone()),
                // Entries without credentials (credential helpers): nothing to use here.
                _ => continue,
            };
            keychain.insert(&registry, credential);
        }
        Ok(keychain)
    }

    /// The content of an image pull Secret's data (values already base64-decoded), given its
    /// type: `.dockerconfigjson` or `.dockercfg`.
    pub fn from_secret_data(
        name: &str,
        type_: &str,
        data: &BTreeMap<String, Vec<u8>>,
    ) -> Result<Keychain, AuthError> {
        let key = match type_ {
            SECRET_TYPE_DOCKERCONFIGJSON => ".dockerconfigjson",
            SECRET_TYPE_DOCKERCFG => ".dockercfg",
            _ => {
                return Err(AuthError::WrongSecretType {
                    name: name.to_string(),
                    type_: type_.to_string(),
                });
            }
        };
        let bytes = data.get(key).ok_or_else(|| AuthError::MissingSecretKey {
            name: name.to_string(),
            type_: type_.to_string(),
            key: key.to_string(),
        })?;
        Keychain::from_docker_config(bytes, &format!("Secret {name:?}"))
    }

    /// An image pull Secret as stored (`data` values base64 as on the wire; `stringData` is
    /// taken too, as the API server would have merged it).
    pub fn from_secret(secret: &wisp_api::core::Secret) -> Result<Keychain, AuthError> {
        let name = &secret.metadata.name;
        let mut data = BTreeMap::new();
        for (k, v) in &secret.data {
            let bytes = STANDARD
                .decode(v.trim())
                .map_err(|_| AuthError::SecretNotBase64 {
                    name: name.clone(),
                    key: k.clone(),
                })?;
            data.insert(k.clone(), bytes);
        }
        for (k, v) in &secret.string_data {
            data.insert(k.clone(), v.as_bytes().to_vec());
        }
        Keychain::from_secret_data(name, &secret.type_, &data)
    }

    /// Docker's config file for this user: `$DOCKER_CONFIG/config.json`, else
    /// `$HOME/.docker/config.json`. A missing file is an empty keychain.
    pub fn from_default_docker_config() -> Result<Keychain, AuthError> {
        let dir = match std::env::var_os("DOCKER_CONFIG") {
            Some(d) => PathBuf::from(d),
            None => match std::env::var_os("HOME") {
                Some(h) => PathBuf::from(h).join(".docker"),
                None => return Ok(Keychain::new()),
            },
        };
        let path = dir.join("config.json");
        match std::fs::read(&path) {
            Ok(bytes) => Keychain::from_docker_config(&bytes, &path.display().to_string()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Keychain::new()),
            Err(source) => Err(AuthError::Read { path, source }),
        }
    }

    /// The credential for `repository` on `registry` (as in a [`crate::Reference`]): entries
    /// whose host matches (exactly or by a `*.` wildcard) and whose path, if any, is a prefix
    /// of the repository; the longest path wins, then an exact host over a wildcard.
    pub fn get(&self, registry: &str, repository: &str) -> Option<&Credential> {
        let (host, _) = normalize_key(registry);
        self.entries
            .iter()
            .filter(|e| host_matches(&e.host, &host))
            .filter(|e| {
                e.path.is_empty()
                    || repository == e.path
                    || repository.starts_with(&format!("{}/", e.path))
            })
            .max_by_key(|e| (e.path.len(), !e.host.contains('*')))
            .map(|e| &e.credential)
    }
}

/// Normalises a config key: scheme and `/v1/`-style suffixes dropped, Docker Hub's aliases
/// made `docker.io`. Returns (host, path prefix).
fn normalize_key(key: &str) -> (String, String) {
    let key = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let (host, path) = key.split_once('/').unwrap_or((key, ""));
    let host = host.to_lowercase();
    let host = match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            DOCKER_HUB.to_string()
        }
        _ => host,
    };
    let mut path = path.trim_matches('/').to_string();
    // Docker writes Hub's key as https://index.docker.io/v1/; v1/v2 are API paths, not repos.
    if path == "v1" || path == "v2" {
        path.clear();
    }
    (host, path)
}

fn host_matches(pattern: &str, host: &str) -> bool {
    if pattern == host {
        return true;
    }
    // `*.example.com` matches one label in front, as the kubelet's matcher does; ports must
    // be equal.
    let (p_host, p_port) = pattern.split_once(':').unwrap_or((pattern, ""));
    let (h_host, h_port) = host.split_once(':').unwrap_or((host, ""));
    if p_port != h_port {
        return false;
    }
    let p: Vec<&str> = p_host.split('.').collect();
    let h: Vec<&str> = h_host.split('.').collect();
    p.len() == h.len()
        && p.iter().zip(&h).all(|(p, h)| {
            *p == *h || (p.starts_with('*') && h.ends_with(p.trim_start_matches('*')))
        })
}

/// A `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Basic {
        realm: Option<String>,
    },
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
        /// `insufficient_scope`, `invalid_token`: set when a token was refused.
        error: Option<String>,
    },
}

/// Parses a `WWW-Authenticate` header value (`Bearer realm="…",service="…",scope="…"` or
/// `Basic realm="…"`). `None` for schemes this client cannot answer or a Bearer challenge
/// without a realm.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = header
        .split_once(|c: char| c.is_ascii_whitespace())
        .unwrap_or((header, ""));
    let params = parse_params(rest);
    match scheme.to_ascii_lowercase().as_str() {
        "basic" => Some(Challenge::Basic {
            realm: params.get("realm").cloned(),
        }),
        "bearer" => Some(Challenge::Bearer {
            realm: params.get("realm").cloned().filter(|r| !r.is_empty())?,
            service: params.get("service").cloned(),
            scope: params.get("scope").cloned(),
            error: params.get("error").cloned(),
        }),
        _ => None,
    }
}

/// `key=value` or `key="quoted, value"` pairs separated by commas; keys lowercased.
fn parse_params(s: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars
            .peek()
            .is_some_and(|c| *c == ',' || c.is_ascii_whitespace())
        {
            chars.next();
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c == ',' {
                break;
            }
            key.push(c);
            chars.next();
        }
        if key.is_empty() && chars.peek().is_none() {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'=') {
            chars.next();
            if chars.peek() == Some(&'"') {
                chars.next();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            if let Some(n) = chars.next() {
                                value.push(n);
                            }
                        }
                        '"' => break,
                        c => value.push(c),
                    }
                }
            } else {
                while let Some(&c) = chars.peek() {
                    if c == ',' {
                        break;
                    }
                    value.push(c);
                    chars.next();
                }
                value = value.trim().to_string();
            }
        }
        let key = key.trim().to_ascii_lowercase();
        if !key.is_empty() {
            out.insert(key, value);
        }
        if chars.peek().is_none() {
            break;
        }
    }
    out
}

/// The scope a request needs: `repository:<repo>:pull` or `…:pull,push`.
pub fn repository_scope(repository: &str, push: bool) -> String {
    if push {
        format!("repository:{repository}:pull,push")
    } else {
        format!("repository:{repository}:pull")
    }
}

/// A token endpoint's answer (Docker's `token` or OAuth2's `access_token`).
#[derive(Debug, Clone, Deserialize)]
pub struct TokenResponse {
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub access_token: Option<String>,
    #[serde(default)]
    pub expires_in: Option<u64>,
}

impl TokenResponse {
    pub fn into_token(self) -> Option<(String, Duration)> {
        let token = self.token.or(self.access_token).filter(|t| !t.is_empty())?;
        // The distribution spec's default lifetime is 60 s.
        Some((token, Duration::from_secs(self.expires_in.unwrap_or(60))))
    }
}

/// Bearer tokens by (registry, scope), dropped shortly before they expire.
#[derive(Debug, Default)]
pub struct TokenCache<T> {
    tokens: HashMap<(String, String), (String, T)>,
}

/// Tokens are dropped this long before their stated expiry, so a request never leaves with a
/// token that expires on the way.
pub const TOKEN_EXPIRY_MARGIN: Duration = Duration::from_secs(10);

impl<T> TokenCache<T>
where
    T: Copy + PartialOrd + std::ops::Add<Duration, Output = T>,
{
    pub fn new() -> Self {
        TokenCache {
            tokens: HashMap::new(),
        }
    }

    /// The token for `registry` and `scope` if it is still good at `now`.
    pub fn get(&self, registry: &str, scope: &str, now: T) -> Option<&str> {
        let (token, valid_until) = self
            .tokens
            .get(&(registry.to_string(), scope.to_string()))?;
        (now < *valid_until).then_some(token.as_str())
    }

    /// Keeps `token` until `lifetime` minus [`TOKEN_EXPIRY_MARGIN`] (at least one second).
    pub fn put(&mut self, registry: &str, scope: &str, token: String, lifetime: Duration, now: T) {
        let keep = lifetime
            .saturating_sub(TOKEN_EXPIRY_MARGIN)
            .max(Duration::from_secs(1));
        self.tokens.insert(
            (registry.to_string(), scope.to_string()),
            (token, now + keep),
        );
    }

    /// Forgets a token the registry refused.
    pub fn remove(&mut self, registry: &str, scope: &str) {
        self.tokens
            .remove(&(registry.to_string(), scope.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        STANDARD.encode(s)
    }

    #[test]
    fn docker_config_forms() {
        let cfg = format!(
            r#"{{"auths":{{
                "https://index.docker.io/v1/":{{"auth":"{}"}},
                "127.0.0.1:5000":{{"username":"bob","password":"pw"}},
                "http://reg.example.com/org":{{"auth":"{}"}},
                "*.wild.io":{{"auth":"{}"}},
                "helper.io":{{}}
            }},"credsStore":"desktop"}}"#,
            b64("hub:hubpw"),
            b64("org:orgpw:with:colons"),
            b64("w:wpw")
        );
        let k = Keychain::from_docker_config(cfg.as_bytes(), "config.json").unwrap();
        assert_eq!(
            k.get("docker.io", "library/busybox"),
            Some(&Credential::new("hub", "hubpw"))
        );
        assert_eq!(
            k.get("127.0.0.1:5000", "x"),
            Some(&Credential::new("bob", "pw"))
        );
        assert_eq!(k.get("127.0.0.1:5001", "x"), None);
        assert_eq!(
            k.get("reg.example.com", "org/app"),
            Some(&Credential::new("org", "orgpw:with:colons"))
        );
        assert_eq!(k.get("reg.example.com", "other/app"), None);
        assert_eq!(k.get("reg.example.com", "organisation/app"), None);
        assert_eq!(k.get("a.wild.io", "x"), Some(&Credential::new("w", "wpw")));
        assert_eq!(k.get("a.b.wild.io", "x"), None);
        assert_eq!(k.get("helper.io", "x"), None);
    }

    #[test]
    fn longest_path_wins() {
        let mut k = Keychain::new();
        k.insert("reg.io", Credential::new("any", "1"));
        k.insert("reg.io/team", Credential::new("team", "2"));
        k.insert("reg.io/team/app", Credential::new("app", "3"));
        assert_eq!(k.get("reg.io", "team/app").unwrap().username, "app");
        assert_eq!(k.get("reg.io", "team/other").unwrap().username, "team");
        assert_eq!(k.get("reg.io", "x").unwrap().username, "any");
    }

    #[test]
    fn legacy_dockercfg_and_secrets() {
        let legacy = format!(r#"{{"reg.io":{{"auth":"{}","email":"x@y"}}}}"#, b64("u:p"));
        let k = Keychain::from_docker_config(legacy.as_bytes(), "x").unwrap();
        assert_eq!(k.get("reg.io", "a"), Some(&Credential::new("u", "p")));

        let json = format!(r#"{{"auths":{{"reg.io":{{"auth":"{}"}}}}}}"#, b64("s:t"));
        let mut data = BTreeMap::new();
        data.insert(".dockerconfigjson".to_string(), json.clone().into_bytes());
        let k = Keychain::from_secret_data("pull", SECRET_TYPE_DOCKERCONFIGJSON, &data).unwrap();
        assert_eq!(k.get("reg.io", "a"), Some(&Credential::new("s", "t")));
        let e = Keychain::from_secret_data("pull", "Opaque", &data).unwrap_err();
        assert!(
            e.to_string().contains("kubernetes.io/dockerconfigjson"),
            "{e}"
        );
        let e = Keychain::from_secret_data("pull", SECRET_TYPE_DOCKERCFG, &data).unwrap_err();
        assert!(e.to_string().contains(".dockercfg"), "{e}");

        let mut secret = wisp_api::core::Secret {
            type_: SECRET_TYPE_DOCKERCONFIGJSON.to_string(),
            ..Default::default()
        };
        secret.metadata.name = "regcred".to_string();
        secret
            .data
            .insert(".dockerconfigjson".to_string(), b64(&json));
        let k = Keychain::from_secret(&secret).unwrap();
        assert_eq!(k.get("reg.io", "a").unwrap().username, "s");
        secret
            .data
            .insert(".dockerconfigjson".to_string(), "%%%".to_string());
        assert!(matches!(
            Keychain::from_secret(&secret),
            Err(AuthError::SecretNotBase64 { .. })
        ));
    }

    #[test]
    fn bad_configs() {
        assert!(matches!(
            Keychain::from_docker_config(b"{", "c"),
            Err(AuthError::BadConfig { .. })
        ));
        let e = Keychain::from_docker_config(
            br#"{"auths":{"r.io":{"auth":"bm9jb2xvbg=="}}}"#,
            "config.json",
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "config.json: the `auth` entry for \"r.io\" is not base64 of \"username:password\""
        );
        assert!(
            Keychain::from_docker_config(br#"{"credsStore":"x"}"#, "c")
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn challenges() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull,push""#,
        )
        .unwrap();
        assert_eq!(
            c,
            Challenge::Bearer {
                realm: "https://auth.docker.io/token".to_string(),
                service: Some("registry.docker.io".to_string()),
                scope: Some("repository:library/busybox:pull,push".to_string()),
                error: None,
            }
        );
        let c = parse_challenge(
            r#"bearer realm="http://127.0.0.1:1/t", error="insufficient_scope", scope=a"#,
        )
        .unwrap();
        let Challenge::Bearer { error, scope, .. } = c else {
            panic!()
        };
        assert_eq!(error.as_deref(), Some("insufficient_scope"));
        assert_eq!(scope.as_deref(), Some("a"));
        assert_eq!(
            parse_challenge(r#"Basic realm="Registry Realm""#),
            Some(Challenge::Basic {
                realm: Some("Registry Realm".to_string())
            })
        );
        assert_eq!(
            parse_challenge("Basic"),
            Some(Challenge::Basic { realm: None })
        );
        assert_eq!(parse_challenge(r#"Bearer service="x""#), None);
        assert_eq!(parse_challenge("Negotiate abc"), None);
        assert_eq!(
            parse_challenge(r#"Bearer realm="a\"b""#),
            Some(Challenge::Bearer {
                realm: "a\"b".to_string(),
                service: None,
                scope: None,
                error: None
            })
        );
    }

    #[test]
    fn basic_header() {
        assert_eq!(
            Credential::new("Aladdin", "open sesame").basic_header(),
            "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
        assert!(!format!("{:?}", Credential::new("u", "secret")).contains("secret"));
    }

    #[test]
    fn token_cache_expiry() {
        // A plain number of seconds stands in for the clock.
        #[derive(Clone, Copy, PartialEq, PartialOrd, Debug)]
        struct T(Duration);
        impl std::ops::Add<Duration> for T {
            type Output = T;
            fn add(self, d: Duration) -> T {
                T(self.0 + d)
            }
        }
        let s = Duration::from_secs;
        let mut c = TokenCache::new();
        c.put("r", "scope", "tok".to_string(), s(60), T(s(100)));
        assert_eq!(c.get("r", "scope", T(s(100))), Some("tok"));
        assert_eq!(c.get("r", "scope", T(s(149))), Some("tok"));
        assert_eq!(c.get("r", "scope", T(s(150))), None);
        assert_eq!(c.get("r", "other", T(s(100))), None);
        assert_eq!(c.get("q", "scope", T(s(100))), None);
        c.put("r", "short", "t2".to_string(), s(5), T(s(0)));
        assert_eq!(c.get("r", "short", T(s(0))), Some("t2"));
        assert_eq!(c.get("r", "short", T(s(1))), None);
        c.remove("r", "scope");
        assert_eq!(c.get("r", "scope", T(s(100))), None);

        let t: TokenResponse = serde_json::from_str(r#"{"access_token":"a"}"#).unwrap();
        assert_eq!(t.into_token(), Some(("a".to_string(), s(60))));
        let t: TokenResponse = serde_json::from_str(r#"{"token":"b","expires_in":300}"#).unwrap();
        assert_eq!(t.into_token(), Some(("b".to_string(), s(300))));
        let t: TokenResponse = serde_json::from_str(r#"{}"#).unwrap();
        assert_eq!(t.into_token(), None);
    }
}
