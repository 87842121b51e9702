//! Image manifests, indexes, configs and platform selection.
//!
//! Registries serve four shapes for one image: OCI indexes and Docker manifest lists (one
//! entry per platform), OCI image manifests and Docker schema 2 manifests (config + layers).
//! They differ in media types only, so one set of types reads all four; Docker schema 1,
//! deprecated since 2017, is refused with a hint. Platform selection follows containerd: the
//! host's OS and architecture must match, the variant is matched with fallbacks (`arm/v7`
//! runs `v6` and `v5`; `arm64` treats no variant as `v8`).
//!
//! Types keep unknown fields of image configs (`extra`) so that `wisp build` on a base image
//! writes back what it did not understand instead of dropping it.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::digest::Digest;

/// Media types of the OCI image spec and Docker's distribution formats.
pub mod media {
    pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
    pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
    pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
    pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
    pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
    pub const OCI_LAYER_NONDIST: &str = "application/vnd.oci.image.layer.nondistributable.v1.tar";
    pub const OCI_LAYER_NONDIST_GZIP: &str =
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";
    pub const OCI_LAYER_NONDIST_ZSTD: &str =
        "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd";
    pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
    pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
    pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
    pub const DOCKER_FOREIGN_LAYER_GZIP: &str =
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
    pub const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
    pub const DOCKER_SCHEMA1_SIGNED: &str =
        "application/vnd.docker.distribution.manifest.v1+prettyjws";

    /// The `Accept` header for manifest requests: every shape this crate reads.
    pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

    pub fn is_index(m: &str) -> bool {
        m == OCI_INDEX || m == DOCKER_LIST
    }

    pub fn is_manifest(m: &str) -> bool {
        m == OCI_MANIFEST || m == DOCKER_MANIFEST
    }
}

/// Errors of reading manifests and configs, and of platform selection.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("{what} is not valid JSON of its kind: {source}")]
    Json {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    #[error(
        "the image uses the Docker schema 1 manifest format, deprecated since 2017 and not supported; push it again with a current docker, buildah or `wisp build`"
    )]
    Schema1,
    #[error(
        "unsupported manifest media type {0:?}: expected an OCI or Docker schema 2 manifest or index"
    )]
    UnsupportedMediaType(String),
    #[error(
        "unsupported layer media type {0:?}: only tar, tar+gzip and tar+zstd layers are supported"
    )]
    UnsupportedLayer(String),
    #[error("the image has no {wanted} variant; it is built for: {available}")]
    NoMatchingPlatform { wanted: String, available: String },
    #[error("the image is built for {image}, but this host runs {wanted}")]
    WrongPlatform { wanted: String, image: String },
    #[error(
        "the image config lists {diff_ids} layer digests (rootfs.diff_ids) but the manifest has {layers} layers"
    )]
    LayerCountMismatch { diff_ids: usize, layers: usize },
}

/// A reference to content: media type, digest, size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urls: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
}

impl Descriptor {
    pub fn new(media_type: &str, digest: Digest, size: u64) -> Self {
        Descriptor {
            media_type: media_type.to_string(),
            digest,
            size,
            urls: None,
            annotations: None,
            platform: None,
        }
    }
}

/// An OS/architecture/variant triple.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct Platform {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    #[serde(
        default,
        rename = "os.version",
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
}

impl Platform {
    pub fn new(os: &str, architecture: &str, variant: Option<&str>) -> Self {
        Platform {
            architecture: architecture.to_string(),
            os: os.to_string(),
            variant: variant.map(str::to_string),
            os_version: None,
        }
    }

    /// The platform of this process: `linux/amd64`, `linux/arm64/v8`, `linux/arm/v7`, ...
    pub fn host() -> Self {
        let arch = normalize_arch(std::env::consts::ARCH);
        let variant = match arch.as_str() {
            "arm64" => Some("v8"),
            "arm" => Some("v7"),
            _ => None,
        };
        Platform::new(std::env::consts::OS, &arch, variant)
    }

    /// Parses `os/arch[/variant]`.
    pub fn parse(s: &str) -> Option<Self> {
        let mut parts = s.split('/');
        let os = parts.next().filter(|p| !p.is_empty())?;
        let arch = parts.next().filter(|p| !p.is_empty())?;
        let variant = parts.next();
        if parts.next().is_some() {
            return None;
        }
        Some(Platform::new(os, &normalize_arch(arch), variant))
    }

    fn normalized(&self) -> (String, String, String) {
        let arch = normalize_arch(&self.architecture);
        let mut variant = self.variant.clone().unwrap_or_default().to_lowercase();
        if arch == "arm64" && (variant.is_empty() || variant == "8") {
            variant = "v8".to_string();
        }
        if arch == "arm" && variant.is_empty() {
            variant = "v7".to_string();
        }
        if arch == "arm" && variant.len() == 1 {
            variant = format!("v{variant}");
        }
        (self.os.to_lowercase(), arch, variant)
    }

    /// How well an image built for `self` runs on `host`: `None` when it cannot, otherwise a
    /// rank where 0 is an exact match and larger numbers are older compatible variants.
    pub fn compatibility(&self, host: &Platform) -> Option<u32> {
        let (os, arch, variant) = self.normalized();
        let (h_os, h_arch, h_variant) = host.normalized();
        if os != h_os || arch != h_arch {
            return None;
        }
        if variant == h_variant {
            return Some(0);
        }
        if h_variant.is_empty() {
            // amd64 and friends: the host takes any variant; an unmarked one first.
            return Some(if variant.is_empty() { 0 } else { 1 });
        }
        if arch == "arm" {
            let level = |v: &str| v.strip_prefix('v').and_then(|n| n.parse::<u32>().ok());
            if let (Some(img), Some(h)) = (level(&variant), level(&h_variant))
                && img <= h
            {
                return Some(h - img);
            }
        }
        None
    }
}

/// Go's architecture names, as images use them.
pub fn normalize_arch(arch: &str) -> String {
    match arch.to_lowercase().as_str() {
        "x86_64" | "x86-64" | "amd64" => "amd64".to_string(),
        "aarch64" | "arm64" => "arm64".to_string(),
        "armhf" | "armel" | "arm" => "arm".to_string(),
        "i386" | "i686" | "x86" | "386" => "386".to_string(),
        "powerpc64" | "ppc64le" => "ppc64le".to_string(),
        other => other.to_string(),
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = self.variant.as_deref().filter(|v| !v.is_empty()) {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// An OCI index or Docker manifest list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageIndex {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

impl ImageIndex {
    /// The manifest to run on `host` (see the module docs), or an error listing the
    /// platforms the index has.
    pub fn select(&self, host: &Platform) -> Result<&Descriptor, ManifestError> {
        self.manifests
            .iter()
            .filter(|d| media::is_manifest(&d.media_type))
            .filter_map(|d| {
                let rank = d.platform.as_ref()?.compatibility(host)?;
                Some((rank, d))
            })
            .min_by_key(|(rank, _)| *rank)
            .map(|(_, d)| d)
            .ok_or_else(|| ManifestError::NoMatchingPlatform {
                wanted: host.to_string(),
                available: self.platforms_text(),
            })
    }

    fn platforms_text(&self) -> String {
        let list: Vec<String> = self
            .manifests
            .iter()
            .filter_map(|d| d.platform.as_ref())
            .filter(|p| p.os != "unknown")
            .map(|p| p.to_string())
            .collect();
        if list.is_empty() {
            "no platform at all (the index lists none)".to_string()
        } else {
            list.join(", ")
        }
    }
}

/// An OCI image manifest or Docker schema 2 manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub config: Descriptor,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// What a manifest request returned.
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::large_enum_variant)] // short-lived values, matched at once
pub enum Manifest {
    Index(ImageIndex),
    Image(ImageManifest),
}

impl Manifest {
    /// Reads a manifest; the `mediaType` field decides its kind, then the HTTP
    /// `Content-Type`, then its shape (`manifests` or `layers`).
    pub fn parse(content_type: Option<&str>, bytes: &[u8]) -> Result<Manifest, ManifestError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Probe {
            #[serde(default)]
            schema_version: Option<u32>,
            #[serde(default)]
            media_type: Option<String>,
            #[serde(default)]
            manifests: Option<serde_json::Value>,
            #[serde(default)]
            layers: Option<serde_json::Value>,
            #[serde(default)]
            fs_layers: Option<serde_json::Value>,
        }
        let json = |source| ManifestError::Json {
            what: "the manifest".to_string(),
            source,
        };
        let probe: Probe = serde_json::from_slice(bytes).map_err(json)?;
        let content_type = content_type.map(|c| c.split(';').next().unwrap_or(c).trim());
        let kind = probe
            .media_type
            .as_deref()
            .filter(|m| !m.is_empty())
            .or(content_type.filter(|c| *c != "application/json"));
        if probe.schema_version == Some(1)
            || probe.fs_layers.is_some()
            || matches!(
                kind,
                Some(media::DOCKER_SCHEMA1 | media::DOCKER_SCHEMA1_SIGNED)
            )
        {
            return Err(ManifestError::Schema1);
        }
        let is_index = match kind {
            Some(m) if media::is_index(m) => true,
            Some(m) if media::is_manifest(m) => false,
            Some(m) => return Err(ManifestError::UnsupportedMediaType(m.to_string())),
            None if probe.manifests.is_some() => true,
            None if probe.layers.is_some() => false,
            None => return Err(ManifestError::UnsupportedMediaType(String::new())),
        };
        if is_index {
            Ok(Manifest::Index(
                serde_json::from_slice(bytes).map_err(json)?,
            ))
        } else {
            Ok(Manifest::Image(
                serde_json::from_slice(bytes).map_err(json)?,
            ))
        }
    }

    /// The media type to send when pushing this manifest.
    pub fn media_type(&self) -> &str {
        match self {
            Manifest::Index(i) => i.media_type.as_deref().unwrap_or(media::OCI_INDEX),
            Manifest::Image(m) => m.media_type.as_deref().unwrap_or(media::OCI_MANIFEST),
        }
    }
}

/// How a layer blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    /// From a layer's media type.
    pub fn of_layer(media_type: &str) -> Result<Compression, ManifestError> {
        match media_type {
            media::OCI_LAYER | media::OCI_LAYER_NONDIST => Ok(Compression::None),
            media::OCI_LAYER_GZIP
            | media::OCI_LAYER_NONDIST_GZIP
            | media::DOCKER_LAYER_GZIP
            | media::DOCKER_FOREIGN_LAYER_GZIP => Ok(Compression::Gzip),
            media::OCI_LAYER_ZSTD | media::OCI_LAYER_NONDIST_ZSTD => Ok(Compression::Zstd),
            other => Err(ManifestError::UnsupportedLayer(other.to_string())),
        }
    }

    /// From the first bytes of a blob (gzip and zstd magic numbers), for layers whose media
    /// type lies (Docker wrote gzip media types for uncompressed layers at times).
    pub fn sniff(head: &[u8]) -> Option<Compression> {
        if head.starts_with(&[0x1f, 0x8b]) {
            Some(Compression::Gzip)
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Some(Compression::Zstd)
        } else {
            None
        }
    }
}

/// An image config (`application/vnd.oci.image.config.v1+json` or Docker's).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ImageConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<ContainerConfig>,
    #[serde(default)]
    pub rootfs: RootFs,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<serde_json::Value>,
    /// Fields this crate does not interpret, kept as they were.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl ImageConfig {
    pub fn parse(bytes: &[u8]) -> Result<ImageConfig, ManifestError> {
        serde_json::from_slice(bytes).map_err(|source| ManifestError::Json {
            what: "the image config".to_string(),
            source,
        })
    }

    pub fn platform(&self) -> Platform {
        Platform::new(&self.os, &self.architecture, self.variant.as_deref())
    }

    /// The execution parameters, empty when the image has none.
    pub fn container(&self) -> ContainerConfig {
        self.config.clone().unwrap_or_default()
    }
}

/// `rootfs` of an image config: the digests of the uncompressed layers, in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RootFs {
    #[serde(rename = "type")]
    pub type_: String,
    #[serde(default)]
    pub diff_ids: Vec<Digest>,
}

impl Default for RootFs {
    fn default() -> Self {
        RootFs {
            type_: "layers".to_string(),
            diff_ids: Vec::new(),
        }
    }
}

/// The execution parameters of an image (`config` of an image config).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desc(platform: &str) -> Descriptor {
        let mut d = Descriptor::new(media::OCI_MANIFEST, Digest::of(platform.as_bytes()), 1);
        d.platform = Platform::parse(platform);
        d
    }

    fn index(platforms: &[&str]) -> ImageIndex {
        ImageIndex {
            schema_version: 2,
            media_type: Some(media::OCI_INDEX.to_string()),
            manifests: platforms.iter().map(|p| desc(p)).collect(),
            annotations: None,
        }
    }

    #[test]
    fn platform_selection_table() {
        // (index platforms, host, expected choice or None)
        let table: &[(&[&str], &str, Option<&str>)] = &[
            (
                &["linux/amd64", "linux/arm64"],
                "linux/amd64",
                Some("linux/amd64"),
            ),
            (
                &["linux/arm64", "linux/amd64"],
                "linux/arm64/v8",
                Some("linux/arm64"),
            ),
            (&["linux/arm64/v8"], "linux/arm64", Some("linux/arm64/v8")),
            (
                &["linux/arm/v6", "linux/arm/v7"],
                "linux/arm/v7",
                Some("linux/arm/v7"),
            ),
            (
                &["linux/arm/v5", "linux/arm/v6"],
                "linux/arm/v7",
                Some("linux/arm/v6"),
            ),
            (&["linux/arm/v7"], "linux/arm/v6", None),
            (
                &["linux/amd64/v3", "linux/amd64"],
                "linux/amd64",
                Some("linux/amd64"),
            ),
            (&["linux/amd64/v2"], "linux/amd64", Some("linux/amd64/v2")),
            (&["windows/amd64", "linux/arm64"], "linux/amd64", None),
            (&["linux/x86_64"], "linux/amd64", Some("linux/amd64")),
            (&[], "linux/amd64", None),
        ];
        for (platforms, host, want) in table {
            let idx = index(platforms);
            let host = Platform::parse(host).unwrap();
            let got = idx
                .select(&host)
                .ok()
                .map(|d| d.platform.clone().unwrap().to_string());
            assert_eq!(got.as_deref(), *want, "{platforms:?} on {host}");
        }
    }

    #[test]
    fn no_platform_error_lists_what_exists() {
        let mut idx = index(&["linux/arm64", "linux/s390x"]);
        let mut att = desc("unknown/unknown");
        att.media_type = media::OCI_MANIFEST.to_string();
        idx.manifests.push(att);
        let e = idx
            .select(&Platform::parse("linux/amd64").unwrap())
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "the image has no linux/amd64 variant; it is built for: linux/arm64, linux/s390x"
        );
    }

    #[test]
    fn host_platform_is_linux() {
        let h = Platform::host();
        assert_eq!(h.os, "linux");
        assert!(!h.architecture.is_empty());
        assert_eq!(h.compatibility(&h), Some(0));
    }

    #[test]
    fn parse_kinds() {
        let d = Digest::of(b"x");
        let oci = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"{}","digest":"{d}","size":1}},"layers":[]}}"#,
            media::OCI_MANIFEST,
            media::OCI_CONFIG
        );
        assert!(matches!(
            Manifest::parse(None, oci.as_bytes()),
            Ok(Manifest::Image(_))
        ));
        // No mediaType field: the content type decides, then the shape.
        let bare = format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"{}","digest":"{d}","size":1}},"layers":[]}}"#,
            media::DOCKER_CONFIG
        );
        assert!(matches!(
            Manifest::parse(Some(media::DOCKER_MANIFEST), bare.as_bytes()),
            Ok(Manifest::Image(_))
        ));
        assert!(matches!(
            Manifest::parse(None, bare.as_bytes()),
            Ok(Manifest::Image(_))
        ));
        let list = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[{{"mediaType":"{}","digest":"{d}","size":1,"platform":{{"architecture":"amd64","os":"linux"}}}}]}}"#,
            media::DOCKER_LIST,
            media::DOCKER_MANIFEST
        );
        let Ok(Manifest::Index(i)) = Manifest::parse(None, list.as_bytes()) else {
            panic!("index expected")
        };
        assert_eq!(
            i.manifests[0].platform.as_ref().unwrap().to_string(),
            "linux/amd64"
        );
        let v1 = r#"{"schemaVersion":1,"name":"x","tag":"y","fsLayers":[]}"#;
        let e = Manifest::parse(None, v1.as_bytes()).unwrap_err();
        assert!(e.to_string().contains("schema 1"), "{e}");
        let weird = r#"{"schemaVersion":2,"mediaType":"application/vnd.foo"}"#;
        assert!(matches!(
            Manifest::parse(None, weird.as_bytes()),
            Err(ManifestError::UnsupportedMediaType(_))
        ));
        assert!(matches!(
            Manifest::parse(None, b"not json"),
            Err(ManifestError::Json { .. })
        ));
    }

    #[test]
    fn config_round_trip_keeps_unknown_fields() {
        let raw = r#"{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/bin"],"Entrypoint":null,"Cmd":["sh"],"Healthcheck":{"Test":["NONE"]}},"rootfs":{"type":"layers","diff_ids":[]},"author":"me"}"#;
        let c = ImageConfig::parse(raw.as_bytes()).unwrap();
        let cc = c.container();
        assert_eq!(cc.cmd.as_deref(), Some(&["sh".to_string()][..]));
        assert_eq!(cc.entrypoint, None);
        let back = serde_json::to_value(&c).unwrap();
        assert_eq!(back["author"], "me");
        assert_eq!(back["config"]["Healthcheck"]["Test"][0], "NONE");
        assert_eq!(c.platform().to_string(), "linux/amd64");
    }

    #[test]
    fn layer_compression() {
        assert_eq!(
            Compression::of_layer(media::DOCKER_LAYER_GZIP).unwrap(),
            Compression::Gzip
        );
        assert_eq!(
            Compression::of_layer(media::OCI_LAYER_ZSTD).unwrap(),
            Compression::Zstd
        );
        assert_eq!(
            Compression::of_layer(media::OCI_LAYER).unwrap(),
            Compression::None
        );
        assert!(Compression::of_layer("application/x-foo").is_err());
        assert_eq!(
            Compression::sniff(&[0x1f, 0x8b, 8]),
            Some(Compression::Gzip)
        );
        assert_eq!(
            Compression::sniff(&[0x28, 0xb5, 0x2f, 0xfd]),
            Some(Compression::Zstd)
        );
        assert_eq!(Compression::sniff(b"ustar"), None);
    }
}
