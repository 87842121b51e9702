//! Image references, parsed and normalised as Docker does.
//!
//! A revision names its image the way users write it (`busybox`, `127.0.0.1:5000/site:v1`,
//! `ghcr.io/org/app@sha256:…`); the registry client needs the registry host, the repository
//! and a tag or digest. Normalising once, here, means one image has one name everywhere: the
//! store's records, the token scopes, the pinned reference a Revision keeps
//! (`docker.io/library/busybox@sha256:…`). Errors say which part is wrong.

use std::fmt;
use std::str::FromStr;

use crate::digest::{Digest, DigestError};

/// Docker Hub's name in references.
pub const DOCKER_HUB: &str = "docker.io";
/// The host that serves Docker Hub's registry API.
pub const DOCKER_HUB_API: &str = "registry-1.docker.io";
const MAX_NAME_LEN: usize = 255;
const MAX_TAG_LEN: usize = 128;

/// A normalised image reference: `registry/repository[:tag][@digest]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

/// Why an image reference was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    #[error("image reference is empty")]
    Empty,
    #[error("invalid image reference {input:?}: repository name must be lowercase")]
    Uppercase { input: String },
    #[error(
        "invalid image reference {input:?}: {component:?} is not a valid repository path component (lowercase letters, digits, and single '.', '_' or '__' or runs of '-' between them)"
    )]
    BadPathComponent { input: String, component: String },
    #[error("invalid image reference {input:?}: {registry:?} is not a valid registry host[:port]")]
    BadRegistry { input: String, registry: String },
    #[error(
        "invalid image reference {input:?}: tag {tag:?} must be 1-128 letters, digits, '_', '.' or '-', not starting with '.' or '-'"
    )]
    BadTag { input: String, tag: String },
    #[error("invalid image reference {input:?}: {source}")]
    BadDigest {
        input: String,
        #[source]
        source: DigestError,
    },
    #[error("invalid image reference {input:?}: repository name is longer than 255 characters")]
    TooLong { input: String },
}

impl Reference {
    /// Parses and normalises `input` (see the module docs).
    pub fn parse(input: &str) -> Result<Reference, ReferenceError> {
        input.parse()
    }

    /// The registry as written in references (`docker.io`, `127.0.0.1:5000`).
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The host[:port] that serves the registry API (`registry-1.docker.io` for Docker Hub).
    pub fn api_host(&self) -> &str {
        if self.registry == DOCKER_HUB {
            DOCKER_HUB_API
        } else {
            &self.registry
        }
    }

    /// The repository within the registry (`library/busybox`).
    pub fn repository(&self) -> &str {
        &self.repository
    }

    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// `registry/repository`, without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// What the registry API takes after `/manifests/`: the digest if there is one, else the
    /// tag (`latest` when neither was written).
    pub fn api_reference(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".to_string(),
        }
    }

    /// The same repository pinned to `digest` (no tag): what a Revision runs, as Knative's
    /// tag-to-digest resolution writes it.
    pub fn pinned(&self, digest: Digest) -> Reference {
        Reference {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            tag: None,
            digest: Some(digest),
        }
    }

    /// The same repository with `tag` (and no digest).
    pub fn with_tag(&self, tag: &str) -> Result<Reference, ReferenceError> {
        if !valid_tag(tag) {
            return Err(ReferenceError::BadTag {
                input: tag.to_string(),
                tag: tag.to_string(),
            });
        }
        Ok(Reference {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            tag: Some(tag.to_string()),
            digest: None,
        })
    }

    /// True for registries on this machine (`localhost`, `127.0.0.0/8`, `[::1]`), which are
    /// always spoken to over plain HTTP.
    pub fn is_loopback_registry(&self) -> bool {
        is_loopback_host(&self.registry)
    }
}

/// True when `registry` (host[:port]) is on this machine.
pub fn is_loopback_host(registry: &str) -> bool {
    let host = host_part(registry);
    host == "localhost"
        || host == "[::1]"
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn host_part(registry: &str) -> &str {
    if registry.starts_with('[') {
        return match registry.find(']') {
            Some(end) => &registry[..=end],
            None => registry,
        };
    }
    registry.split(':').next().unwrap_or(registry)
}

impl FromStr for Reference {
    type Err = ReferenceError;

    fn from_str(input: &str) -> Result<Reference, ReferenceError> {
        if input.is_empty() {
            return Err(ReferenceError::Empty);
        }
        let (name_tag, digest) = match input.split_once('@') {
            Some((n, d)) => {
                let digest = d
                    .parse::<Digest>()
                    .map_err(|source| ReferenceError::BadDigest {
                        input: input.to_string(),
                        source,
                    })?;
                (n, Some(digest))
            }
            None => (input, None),
        };
        // A tag follows the last ':' that comes after the last '/'; an earlier ':' is a port.
        let last_slash = name_tag.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match name_tag[last_slash..].rfind(':') {
            Some(i) => {
                let at = last_slash + i;
                (&name_tag[..at], Some(&name_tag[at + 1..]))
            }
            None => (name_tag, None),
        };
        if let Some(tag) = tag
            && !valid_tag(tag)
        {
            return Err(ReferenceError::BadTag {
                input: input.to_string(),
                tag: tag.to_string(),
            });
        }
        let (registry, path) = split_registry(name);
        let mut repository = path.to_string();
        if registry == DOCKER_HUB && !repository.contains('/') {
            repository = format!("library/{repository}");
        }
        if !valid_registry(&registry) {
            return Err(ReferenceError::BadRegistry {
                input: input.to_string(),
                registry,
            });
        }
        if repository.is_empty() {
            return Err(ReferenceError::BadPathComponent {
                input: input.to_string(),
                component: String::new(),
            });
        }
        if repository.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(ReferenceError::Uppercase {
                input: input.to_string(),
            });
        }
        for component in repository.split('/') {
            if !valid_path_component(component) {
                return Err(ReferenceError::BadPathComponent {
                    input: input.to_string(),
                    component: component.to_string(),
                });
            }
        }
        if registry.len() + 1 + repository.len() > MAX_NAME_LEN {
            return Err(ReferenceError::TooLong {
                input: input.to_string(),
            });
        }
        let tag = match (tag, &digest) {
            (Some(t), _) => Some(t.to_string()),
            (None, Some(_)) => None,
            (None, None) => Some("latest".to_string()),
        };
        Ok(Reference {
            registry,
            repository,
            tag,
            digest,
        })
    }
}

/// Docker's `splitDockerDomain`: the first component is a registry when it contains `.` or
/// `:`, is `localhost`, or has uppercase letters (which a repository cannot).
fn split_registry(name: &str) -> (String, &str) {
    match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.bytes().any(|b| b.is_ascii_uppercase()) =>
        {
            let registry = if first == "index.docker.io" {
                DOCKER_HUB.to_string()
            } else {
                first.to_string()
            };
            (registry, rest)
        }
        _ => (DOCKER_HUB.to_string(), name),
    }
}

fn valid_registry(registry: &str) -> bool {
    let (host, port) = if let Some(rest) = registry.strip_prefix('[') {
        // [ipv6]:port
        let Some((addr, after)) = rest.split_once(']') else {
            return false;
        };
        if addr.parse::<std::net::Ipv6Addr>().is_err() {
            return false;
        }
        match after {
            "" => return true,
            p => match p.strip_prefix(':') {
                Some(port) => ("", Some(port)),
                None => return false,
            },
        }
    } else {
        match registry.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (registry, None),
        }
    };
    if let Some(port) = port
        && (port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()))
    {
        return false;
    }
    if registry.starts_with('[') {
        return true;
    }
    !host.is_empty()
        && host.split('.').all(|c| {
            !c.is_empty()
                && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !c.starts_with('-')
                && !c.ends_with('-')
        })
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
fn valid_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() || !is_alnum(b[0]) || !is_alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if is_alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !is_alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// `[\w][\w.-]{0,127}`
fn valid_tag(tag: &str) -> bool {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    !tag.is_empty()
        && tag.len() <= MAX_TAG_LEN
        && word(tag.as_bytes()[0])
        && tag.bytes().all(|b| word(b) || b == b'.' || b == b'-')
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn normalises_like_docker() {
        let d = format!("sha256:{HEX}");
        let table: &[(&str, &str)] = &[
            ("busybox", "docker.io/library/busybox:latest"),
            ("busybox:1.36", "docker.io/library/busybox:1.36"),
            ("library/busybox", "docker.io/library/busybox:latest"),
            ("docker.io/busybox", "docker.io/library/busybox:latest"),
            (
                "index.docker.io/library/busybox",
                "docker.io/library/busybox:latest",
            ),
            ("user/app:v1", "docker.io/user/app:v1"),
            ("127.0.0.1:5000/site:v1", "127.0.0.1:5000/site:v1"),
            ("localhost/site", "localhost/site:latest"),
            ("localhost:5000/a/b/c", "localhost:5000/a/b/c:latest"),
            ("ghcr.io/org/app", "ghcr.io/org/app:latest"),
            ("[::1]:5000/app:x", "[::1]:5000/app:x"),
            ("a.b-c/x__y.z-w--v_u", "a.b-c/x__y.z-w--v_u:latest"),
        ];
        for (input, want) in table {
            let r = Reference::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(r.to_string(), *want, "{input}");
        }
        let r = Reference::parse(&format!("127.0.0.1:5000/site@{d}")).unwrap();
        assert_eq!(r.to_string(), format!("127.0.0.1:5000/site@{d}"));
        assert_eq!(r.tag(), None);
        assert_eq!(r.api_reference(), d);
        let r = Reference::parse(&format!("busybox:1@{d}")).unwrap();
        assert_eq!(r.to_string(), format!("docker.io/library/busybox:1@{d}"));
        assert_eq!(r.api_reference(), d);
        assert_eq!(
            r.pinned(r.digest().unwrap().clone()).to_string(),
            format!("docker.io/library/busybox@{d}")
        );
    }

    #[test]
    fn parts() {
        let r = Reference::parse("busybox").unwrap();
        assert_eq!(r.registry(), "docker.io");
        assert_eq!(r.api_host(), "registry-1.docker.io");
        assert_eq!(r.repository(), "library/busybox");
        assert_eq!(r.api_reference(), "latest");
        assert!(!r.is_loopback_registry());
        let r = Reference::parse("127.0.0.1:5000/a/b:t").unwrap();
        assert_eq!(r.api_host(), "127.0.0.1:5000");
        assert_eq!(r.repository(), "a/b");
        assert_eq!(r.tag(), Some("t"));
        assert_eq!(r.name(), "127.0.0.1:5000/a/b");
        assert!(r.is_loopback_registry());
        assert!(
            Reference::parse("localhost:1/x")
                .unwrap()
                .is_loopback_registry()
        );
        assert!(
            Reference::parse("[::1]:1/x")
                .unwrap()
                .is_loopback_registry()
        );
        assert!(
            !Reference::parse("10.0.0.1:1/x")
                .unwrap()
                .is_loopback_registry()
        );
        assert!(
            !Reference::parse("localhost.evil.com/x")
                .unwrap()
                .is_loopback_registry()
        );
    }

    #[test]
    fn refuses_with_reasons() {
        let cases: &[(&str, &str)] = &[
            ("", "empty"),
            ("Busybox", "lowercase"),
            ("docker.io/Library/busybox", "lowercase"),
            ("busybox:", "tag \"\""),
            ("busybox:-x", "tag"),
            ("busybox:a/b", "registry"),
            ("a//b", "path component"),
            ("a/b-", "path component"),
            ("a/.b", "path component"),
            ("a/b___c", "path component"),
            ("foo.com:port/x", "registry"),
            ("-foo.com/x", "registry"),
            ("busybox@sha256:abc", "sha256:"),
            ("busybox@sha512:abc", "only sha256"),
            ("busybox@", "digest"),
            ("ghcr.io/", "path component"),
        ];
        for (input, want) in cases {
            let e = Reference::parse(input).expect_err(input).to_string();
            assert!(e.contains(want), "{input:?}: {e:?} should mention {want:?}");
        }
        let long = format!("x/{}", "a".repeat(260));
        assert!(matches!(
            Reference::parse(&long),
            Err(ReferenceError::TooLong { .. })
        ));
        let tag = "t".repeat(129);
        assert!(Reference::parse(&format!("x:{tag}")).is_err());
    }

    #[test]
    fn with_tag() {
        let r = Reference::parse(&format!("x@sha256:{HEX}")).unwrap();
        assert_eq!(
            r.with_tag("v2").unwrap().to_string(),
            "docker.io/library/x:v2"
        );
        assert!(r.with_tag("..").is_err());
    }
}
