//! The Secrets and ConfigMaps a revision names: `env[].valueFrom`, `envFrom[]` and
//! `imagePullSecrets[]`.
//!
//! Why here and not in the runtime: they are API objects, and the runtime knows nothing of the
//! API's store. Kubernetes reads them when it creates a container; wisp reads them when a
//! revision is planned (first run, and whenever its plan changes), so every replica of one plan
//! starts with the same values. A missing Secret or key fails the revision with Kubernetes'
//! reason, `CreateContainerConfigError`, and is retried with back-off like a missing image, so
//! creating the Secret afterwards is enough.

use std::collections::BTreeMap;

use wisp_api::core::{ConfigMap, Container, Secret};
use wisp_api::kinds::{self, ResourceInfo};
use wisp_oci::auth::Keychain;
use wisp_store::{Store, StoreError};

use crate::plan::PlanError;

/// What a plan's references resolved to.
#[derive(Debug, Default)]
pub struct Resolved {
    /// Values for the container's `valueFrom` entries and `envFrom` sources, by name.
    pub env: Vec<(String, String)>,
    /// Credentials of the `imagePullSecrets`, consulted before the daemon's docker config.
    pub keychain: Keychain,
}

/// Whether `container` or the pull secrets refer to anything that must be read.
pub fn any(container: &Container, pull_secrets: &[String]) -> bool {
    !pull_secrets.is_empty()
        || !container.env_from.is_empty()
        || container.env.iter().any(|e| {
            e.value_from
                .as_ref()
                .is_some_and(|s| s.secret_key_ref.is_some() || s.config_map_key_ref.is_some())
        })
}

fn config_error(message: String) -> PlanError {
    PlanError {
        reason: "CreateContainerConfigError",
        message,
    }
}

/// One object's string data, read at most once per resolution.
struct Objects<'a> {
    store: &'a dyn Store,
    namespace: &'a str,
    secrets: BTreeMap<String, Option<BTreeMap<String, String>>>,
    config_maps: BTreeMap<String, Option<BTreeMap<String, String>>>,
}

impl Objects<'_> {
    async fn read(
        &self,
        info: &ResourceInfo,
        name: &str,
    ) -> Result<Option<serde_json::Value>, PlanError> {
        match self
            .store
            .get(&kinds::storage_key(info), self.namespace, name)
            .await
        {
            Ok(v) => Ok(Some(v)),
            Err(StoreError::NotFound { .. }) => Ok(None),
            Err(e) => Err(config_error(format!(
                "cannot read {} {name:?}: {e}",
                info.singular
            ))),
        }
    }

    async fn secret(&mut self, name: &str) -> Result<Option<&BTreeMap<String, String>>, PlanError> {
        if !self.secrets.contains_key(name) {
            let data = match self.read(&kinds::SECRETS, name).await? {
                None => None,
                Some(v) => {
                    let s: Secret = serde_json::from_value(v)
                        .map_err(|e| config_error(format!("cannot read secret {name:?}: {e}")))?;
                    let mut data = BTreeMap::new();
                    for (k, v) in s.data {
                        let bytes = base64_decode(&v).ok_or_else(|| {
                            config_error(format!("secret {name:?}: key {k:?} is not valid base64"))
                        })?;
                        data.insert(k, String::from_utf8_lossy(&bytes).into_owned());
                    }
                    Some(data)
                }
            };
            self.secrets.insert(name.to_string(), data);
        }
        Ok(self.secrets[name].as_ref())
    }

    async fn config_map(
        &mut self,
        name: &str,
    ) -> Result<Option<&BTreeMap<String, String>>, PlanError> {
        if !self.config_maps.contains_key(name) {
            let data = match self.read(&kinds::CONFIGMAPS, name).await? {
                None => None,
                Some(v) => {
                    let c: ConfigMap = serde_json::from_value(v).map_err(|e| {
                        config_error(format!("cannot read configmap {name:?}: {e}"))
                    })?;
                    Some(c.data)
                }
            };
            self.config_maps.insert(name.to_string(), data);
        }
        Ok(self.config_maps[name].as_ref())
    }
}

/// Reads what `container` and `pull_secrets` refer to in `namespace`.
pub async fn resolve(
    store: &dyn Store,
    namespace: &str,
    container: &Container,
    pull_secrets: &[String],
) -> Result<Resolved, PlanError> {
    let mut objects = Objects {
        store,
        namespace,
        secrets: BTreeMap::new(),
        config_maps: BTreeMap::new(),
    };
    let mut env: Vec<(String, String)> = Vec::new();
    // envFrom first: a name the container's own `env` also sets keeps the `env` value, as in
    // Kubernetes.
    for source in &container.env_from {
        let (kind, r) = match (&source.secret_ref, &source.config_map_ref) {
            (Some(r), _) => ("secret", r),
            (None, Some(r)) => ("configmap", r),
            (None, None) => continue,
        };
        let data = if kind == "secret" {
            objects.secret(&r.name).await?
        } else {
            objects.config_map(&r.name).await?
        };
        match data {
            Some(data) => {
                for (k, v) in data {
                    let name = format!("{}{k}", source.prefix);
                    if !container.env.iter().any(|e| e.name == name) {
                        env.push((name, v.clone()));
                    }
                }
            }
            None if r.optional == Some(true) => {}
            None => return Err(config_error(format!("{kind} {:?} not found", r.name))),
        }
    }
    for var in &container.env {
        let Some(source) = &var.value_from else {
            continue;
        };
        let (kind, selector) = match (&source.secret_key_ref, &source.config_map_key_ref) {
            (Some(s), _) => ("secret", s),
            (None, Some(s)) => ("configmap", s),
            (None, None) => continue,
        };
        let data = if kind == "secret" {
            objects.secret(&selector.name).await?
        } else {
            objects.config_map(&selector.name).await?
        };
        let optional = selector.optional == Some(true);
        match data.map(|d| d.get(&selector.key)) {
            Some(Some(value)) => env.push((var.name.clone(), value.clone())),
            _ if optional => {}
            None => {
                return Err(config_error(format!(
                    "{kind} {:?} not found (env {})",
                    selector.name, var.name
                )));
            }
            Some(None) => {
                return Err(config_error(format!(
                    "couldn't find key {} in {kind} {namespace}/{} (env {})",
                    selector.key, selector.name, var.name
                )));
            }
        }
    }
    let mut keychain = Keychain::new();
    for name in pull_secrets {
        let Some(v) = objects.read(&kinds::SECRETS, name).await? else {
            // Kubernetes pulls anonymously when a pull secret is missing, and says so.
            tracing::warn!(namespace, secret = %name, "image pull secret not found; pulling without it");
            continue;
        };
        let secret: Secret = serde_json::from_value(v)
            .map_err(|e| config_error(format!("cannot read secret {name:?}: {e}")))?;
        let creds = Keychain::from_secret(&secret).map_err(|e| PlanError {
            reason: "ImagePullSecretInvalid",
            message: e.to_string(),
        })?;
        keychain.extend(creds);
    }
    Ok(Resolved { env, keychain })
}

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .ok()
}
