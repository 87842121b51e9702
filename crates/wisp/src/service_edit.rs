//! The flags of `service create` and `service update` that edit a Service, and how they edit
//! it: a port of knative/client `ConfigurationEditFlags.Apply` and the PodSpec flag helpers,
//! as pure functions over wisp's typed `Service` (the clock and the random source are
//! arguments).
//!
//! What kn does and wisp does too: `--env K=V`/`K-`, `--env-from`, `--env-value-from`,
//! `--env-file`, `--image`, `--cmd`/`--arg` (each flag one word; `--arg` replaces the list),
//! `--port [NAME:]PORT`, `--limit`/`--request`, `--pull-policy`, `--service-account`,
//! `--revision-name` templates, the autoscaling annotations (`--scale*`,
//! `--concurrency-limit`), `--annotation` on Service and template (autoscaling keys on the
//! template only), `--label` on both, `--cluster-local`, `--timeout`, and the
//! `client.knative.dev/updateTimestamp` template annotation that makes every mutating update
//! produce a new revision. Not ported: volumes/mounts, probes, `--containers`, node
//! scheduling, profiles and image digest pinning (`--lock-to-digest`).

use std::collections::BTreeMap;

use wisp_api::core::{
    Container, ContainerPort, EnvFromSource, EnvSourceRef, EnvVar, EnvVarSource, KeySelector,
    Quantity,
};
use wisp_api::serving::{RevisionTemplateSpec, Service, keys};

/// kn's annotation recording the time of the last mutating update.
pub const UPDATE_TIMESTAMP_ANNOTATION: &str = "client.knative.dev/updateTimestamp";

const PORT_FORMAT_ERR: &str = "Please provide in the format 'NAME:PORT', where 'NAME' is optional. Examples: '--port h2c:8080' , '--port 8080'.";

/// Flags that change a Service (shared by `service create` and `service update`).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct EditFlags {
    /// Image to run (an OCI image).
    #[arg(long, value_name = "IMAGE")]
    pub image: Option<String>,
    /// Command to run instead of the image's entrypoint; without --image, the host process
    /// to start. One word per flag: --cmd python3 --cmd app.py.
    #[arg(long = "cmd", value_name = "CMD", allow_hyphen_values = true)]
    pub cmd: Vec<String>,
    /// Argument to the command; repeat for several (replaces the current arguments).
    #[arg(long = "arg", value_name = "ARG", allow_hyphen_values = true)]
    pub args: Vec<String>,
    /// Environment variable NAME=value; NAME- removes it. Repeatable.
    #[arg(short = 'e', long = "env", value_name = "NAME=VALUE")]
    pub env: Vec<String>,
    /// Environment variables from a ConfigMap (cm:NAME) or Secret (secret:NAME); append "-"
    /// to remove. Repeatable.
    #[arg(long = "env-from", value_name = "SOURCE")]
    pub env_from: Vec<String>,
    /// Environment variable from a key of a ConfigMap or Secret: NAME=cm:CONFIGMAP:KEY or
    /// NAME=secret:SECRET:KEY; NAME- removes it. Repeatable.
    #[arg(long = "env-value-from", value_name = "NAME=SOURCE")]
    pub env_value_from: Vec<String>,
    /// File of NAME=value lines to add to the environment.
    #[arg(long = "env-file", value_name = "FILE")]
    pub env_file: Option<std::path::PathBuf>,
    /// Lines of --env-file, read by the command before applying the flags.
    #[arg(skip)]
    pub env_file_lines: Vec<String>,
    /// The port the application listens on: [NAME:]PORT (NAME h2c selects HTTP/2).
    #[arg(short = 'p', long, value_name = "[NAME:]PORT")]
    pub port: Option<String>,
    /// Resource limits, e.g. cpu=100m,memory=256Mi; memory- removes one. Repeatable.
    #[arg(
        long = "limit",
        value_name = "RESOURCE=QUANTITY",
        value_delimiter = ','
    )]
    pub limits: Vec<String>,
    /// Resource requests, e.g. cpu=100m,memory=256Mi; cpu- removes one. Repeatable.
    #[arg(
        long = "request",
        value_name = "RESOURCE=QUANTITY",
        value_delimiter = ','
    )]
    pub requests: Vec<String>,
    /// Image pull policy: Always, Never or IfNotPresent.
    #[arg(long = "pull-policy", value_name = "POLICY")]
    pub pull_policy: Option<String>,
    /// Service account the revision runs as ("" clears it).
    #[arg(long = "service-account", value_name = "NAME")]
    pub service_account: Option<String>,
    /// Name of the new revision; must start with the service name and a dash (added if
    /// missing). Templates: {{.Service}}, {{.Generation}}, {{.Random 5}}. Default: the
    /// server names it {service}-{generation:05}.
    #[arg(long = "revision-name", value_name = "NAME")]
    pub revision_name: Option<String>,
    /// Hard limit of concurrent requests per replica (containerConcurrency; 0 = unlimited).
    #[arg(
        long = "concurrency-limit",
        value_name = "N",
        allow_negative_numbers = true
    )]
    pub concurrency_limit: Option<i64>,
    /// Target of the autoscaling metric per replica (autoscaling.knative.dev/target).
    #[arg(long = "scale-target", alias = "concurrency-target", value_name = "N")]
    pub scale_target: Option<i64>,
    /// Minimum number of replicas (autoscaling.knative.dev/min-scale).
    #[arg(long = "scale-min", alias = "min-scale", value_name = "N")]
    pub scale_min: Option<i64>,
    /// Maximum number of replicas (autoscaling.knative.dev/max-scale).
    #[arg(long = "scale-max", alias = "max-scale", value_name = "N")]
    pub scale_max: Option<i64>,
    /// Minimum and maximum replicas at once: N, MIN..MAX, MIN.. or ..MAX.
    #[arg(long, value_name = "RANGE")]
    pub scale: Option<String>,
    /// Initial number of replicas (autoscaling.knative.dev/initial-scale).
    #[arg(long = "scale-init", value_name = "N")]
    pub scale_init: Option<i64>,
    /// Minimum non-zero number of replicas (autoscaling.knative.dev/activation-scale).
    #[arg(long = "scale-activation", value_name = "N")]
    pub scale_activation: Option<i64>,
    /// Autoscaling metric: concurrency or rps.
    #[arg(long = "scale-metric", value_name = "METRIC")]
    pub scale_metric: Option<String>,
    /// Percentage of the target to aim for before scaling up.
    #[arg(
        long = "scale-utilization",
        alias = "concurrency-utilization",
        value_name = "PERCENT"
    )]
    pub scale_utilization: Option<i64>,
    /// Autoscaling window, e.g. 10s (autoscaling.knative.dev/window).
    #[arg(
        long = "scale-window",
        alias = "autoscale-window",
        value_name = "DURATION"
    )]
    pub scale_window: Option<String>,
    /// Annotation for both the Service and its revisions (autoscaling ones only on
    /// revisions): NAME=VALUE, NAME- removes. Repeatable.
    #[arg(short = 'a', long = "annotation", value_name = "NAME=VALUE")]
    pub annotations: Vec<String>,
    /// Annotation for the Service only. Repeatable.
    #[arg(long = "annotation-service", value_name = "NAME=VALUE")]
    pub annotations_service: Vec<String>,
    /// Annotation for the revisions only. Repeatable.
    #[arg(long = "annotation-revision", value_name = "NAME=VALUE")]
    pub annotations_revision: Vec<String>,
    /// Label for both the Service and its revisions: NAME=VALUE, NAME- removes. Repeatable.
    #[arg(short = 'l', long = "label", value_name = "NAME=VALUE")]
    pub labels: Vec<String>,
    /// Label for the Service only. Repeatable.
    #[arg(long = "label-service", value_name = "NAME=VALUE")]
    pub labels_service: Vec<String>,
    /// Label for the revisions only. Repeatable.
    #[arg(long = "label-revision", value_name = "NAME=VALUE")]
    pub labels_revision: Vec<String>,
    /// Keep the service off the gateway (networking.knative.dev/visibility=cluster-local).
    #[arg(long = "cluster-local", overrides_with = "no_cluster_local")]
    pub cluster_local: bool,
    /// Make a cluster-local service public again.
    #[arg(long = "no-cluster-local", overrides_with = "cluster_local")]
    pub no_cluster_local: bool,
    /// Request timeout in seconds (timeoutSeconds).
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<i64>,
}

impl EditFlags {
    /// Whether any flag changes the revision template (kn's `AnyMutation`): such a command
    /// creates a new revision.
    pub fn any_mutation(&self) -> bool {
        self.image.is_some()
            || !self.cmd.is_empty()
            || !self.args.is_empty()
            || !self.env.is_empty()
            || !self.env_from.is_empty()
            || !self.env_value_from.is_empty()
            || self.env_file.is_some()
            || !self.env_file_lines.is_empty()
            || self.port.is_some()
            || !self.limits.is_empty()
            || !self.requests.is_empty()
            || self.service_account.is_some()
            || self.revision_name.is_some()
            || self.concurrency_limit.is_some()
            || self.scale_target.is_some()
            || self.scale_min.is_some()
            || self.scale_max.is_some()
            || self.scale.is_some()
            || self.scale_init.is_some()
            || self.scale_activation.is_some()
            || self.scale_metric.is_some()
            || self.scale_utilization.is_some()
            || self.scale_window.is_some()
            || !self.annotations.is_empty()
            || !self.annotations_service.is_empty()
            || !self.annotations_revision.is_empty()
            || !self.labels.is_empty()
            || !self.labels_service.is_empty()
            || !self.labels_revision.is_empty()
            || self.timeout.is_some()
    }

    /// Whether any flag at all was given (mutating or not).
    pub fn any(&self) -> bool {
        self.any_mutation()
            || self.pull_policy.is_some()
            || self.cluster_local
            || self.no_cluster_local
    }
}

/// What [`EditFlags::apply`] needs from outside: the clock and a random source.
pub struct EditContext<'a> {
    /// RFC 3339 `now`, for the update timestamp annotation.
    pub now: &'a str,
    /// Random numbers for `{{.Random N}}` in revision names.
    pub random: &'a mut dyn FnMut() -> u64,
}

/// `K=V` pairs in order, and the `K`s to remove.
pub type Pairs = (Vec<(String, String)>, Vec<String>);

/// kn's `OrderedMapAndRemovalListFromArray`: `K=V` pairs in first-seen order (a repeated key
/// keeps its first position and takes the last value) and `K-` removals.
pub fn parse_pairs(values: &[String]) -> Result<Pairs, String> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    let mut removals = Vec::new();
    for v in values {
        match v.split_once('=') {
            Some((k, val)) => match pairs.iter_mut().find(|(pk, _)| pk == k) {
                Some(p) => p.1 = val.to_string(),
                None => pairs.push((k.to_string(), val.to_string())),
            },
            None => match v.strip_suffix('-') {
                Some(k) => removals.push(k.to_string()),
                None => {
                    return Err(format!(
                        "argument requires a value that contains the \"=\" character; got {v:?}"
                    ));
                }
            },
        }
    }
    Ok((pairs, removals))
}

/// kn's `MapFromArrayAllowingSingles`: `K=V` or a bare `K` (empty value); duplicate keys are
/// an error.
pub fn map_allowing_singles(values: &[String]) -> Result<BTreeMap<String, String>, String> {
    let mut map = BTreeMap::new();
    for v in values {
        let (k, val) = v.split_once('=').unwrap_or((v.as_str(), ""));
        if v.contains('=') && k.is_empty() {
            return Err("The key is empty".to_string());
        }
        if map.insert(k.to_string(), val.to_string()).is_some() && v.contains('=') {
            return Err(format!(
                "The key {k:?} has been duplicate in [{}]",
                values.join(" ")
            ));
        }
    }
    Ok(map)
}

/// kn's `ParseMinusSuffix`: removes `K-` keys from `map` and returns the `K`s.
fn take_removals(map: &mut BTreeMap<String, String>) -> Vec<String> {
    let keys: Vec<String> = map.keys().filter(|k| k.ends_with('-')).cloned().collect();
    keys.into_iter()
        .map(|k| {
            map.remove(&k);
            k.trim_end_matches('-').to_string()
        })
        .collect()
}

fn update_map(
    map: &mut BTreeMap<String, String>,
    add: &BTreeMap<String, String>,
    remove: &[String],
) {
    for (k, v) in add {
        map.insert(k.clone(), v.clone());
    }
    for k in remove {
        map.remove(k);
    }
}

/// kn's `createEnvVarSource`: `cm:NAME:KEY` / `secret:NAME:KEY`.
fn env_var_source(spec: &str) -> Result<EnvVarSource, String> {
    let parts: Vec<&str> = spec.splitn(3, ':').collect();
    if parts.len() != 3 {
        return Err(format!(
            "argument requires a value in form \"resourceType:name:key\" where \"resourceType\" can be one of \"config-map\" (\"cm\") or \"secret\" (\"sc\"); got {spec:?}"
        ));
    }
    let (kind, name, key) = (parts[0].trim(), parts[1].trim(), parts[2].trim());
    let selector = KeySelector {
        name: name.to_string(),
        key: key.to_string(),
        optional: None,
    };
    let (source, what) = match kind {
        "config-map" | "cm" => (
            EnvVarSource {
                config_map_key_ref: Some(selector),
                ..EnvVarSource::default()
            },
            "ConfigMap",
        ),
        "secret" | "sc" => (
            EnvVarSource {
                secret_key_ref: Some(selector),
                ..EnvVarSource::default()
            },
            "Secret",
        ),
        _ => {
            return Err(format!(
                "unsupported env source type \"{kind:?}\"; supported source types are \"config-map\" (\"cm\") and \"secret\" (\"sc\")"
            ));
        }
    };
    if name.is_empty() {
        return Err(format!("the name of {what} cannot be an empty string"));
    }
    if key.is_empty() {
        return Err(format!(
            "the key referenced by resource {what} \"{name}\" cannot be an empty string"
        ));
    }
    Ok(source)
}

/// `cm:NAME` / `config-map:NAME` / `secret:NAME` / `sc:NAME` as (is_secret, name).
fn env_from_ref(spec: &str) -> Result<(bool, String), String> {
    let Some((kind, name)) = spec.split_once(':') else {
        return Err(format!(
            "argument requires a value that contains the : character; got {spec:?}"
        ));
    };
    let name = name.trim().to_string();
    let secret = match kind.trim() {
        "config-map" | "cm" => false,
        "secret" | "sc" => true,
        _ => {
            return Err(format!(
                "unsupported env source type \"{kind:?}\"; supported source types are \"config-map\" (\"cm\") and \"secret\" (\"sc\")"
            ));
        }
    };
    if name.is_empty() {
        return Err(format!(
            "the name of {} cannot be an empty string",
            if secret { "secret" } else { "config-map" }
        ));
    }
    Ok((secret, name))
}

/// Sets, updates in place, appends and removes environment variables, as kn does.
fn update_env(container: &mut Container, set: Vec<EnvVar>, remove: &[String]) {
    for var in set {
        match container.env.iter_mut().find(|e| e.name == var.name) {
            Some(e) => *e = var,
            None => container.env.push(var),
        }
    }
    for name in remove {
        if let Some(i) = container.env.iter().position(|e| &e.name == name) {
            container.env.remove(i);
        }
    }
}

fn env_from_matches(src: &EnvFromSource, secret: bool, name: &str) -> bool {
    let r = if secret {
        &src.secret_ref
    } else {
        &src.config_map_ref
    };
    r.as_ref().is_some_and(|r| r.name == name)
}

/// kn's `UpdateContainerPort`.
pub fn parse_port(spec: &str) -> Result<ContainerPort, String> {
    let (name, number) = match spec.split_once(':') {
        Some((n, p)) => (n, p),
        None => ("", spec),
    };
    let port: i32 = number
        .parse()
        .map_err(|_| format!("the port specification '{spec}' is not valid. {PORT_FORMAT_ERR}"))?;
    Ok(ContainerPort {
        name: name.to_string(),
        container_port: port,
        ..ContainerPort::default()
    })
}

fn update_resources(
    map: &mut BTreeMap<String, Quantity>,
    specs: &[String],
    flag: &str,
) -> Result<(), String> {
    for spec in specs {
        match spec.split_once('=') {
            Some((k, v)) if !k.is_empty() && !v.is_empty() => {
                map.insert(k.to_string(), Quantity(v.to_string()));
            }
            None if spec.ends_with('-') && spec.len() > 1 => {
                map.remove(spec.trim_end_matches('-'));
            }
            _ => {
                return Err(format!(
                    "Invalid --{flag}: want RESOURCE=QUANTITY or RESOURCE-; got {spec:?}"
                ));
            }
        }
    }
    Ok(())
}

/// Checks a Go duration (`10s`, `1m30s`, `1.5h`), as `time.ParseDuration` accepts them.
pub fn check_go_duration(s: &str) -> Result<(), String> {
    let bad = || format!("time: invalid duration {s:?}");
    let mut rest = s.strip_prefix(['+', '-']).unwrap_or(s);
    if rest == "0" {
        return Ok(());
    }
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let num = &rest[..num_len];
        if num.is_empty() || num == "." || num.matches('.').count() > 1 {
            return Err(bad());
        }
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        match &rest[..unit_len] {
            "ns" | "us" | "µs" | "μs" | "ms" | "s" | "m" | "h" => {}
            "" => return Err(format!("time: missing unit in duration {s:?}")),
            u => return Err(format!("time: unknown unit {u:?} in duration {s:?}")),
        }
        rest = &rest[unit_len..];
    }
    Ok(())
}

const CONSONANTS: &[u8] = b"bcdfghjklmnpqrstvwxyz";

/// kn's `GenerateRevisionName`: expands `{{.Service}}`, `{{.Generation}}` (the next
/// generation) and `{{.Random N}}` (N random consonants), and prefixes `{service}-` when the
/// result does not start with it. An empty result means "let the server name it".
pub fn generate_revision_name(
    template: &str,
    service: &str,
    generation: i64,
    random: &mut dyn FnMut() -> u64,
) -> Result<String, String> {
    let bad = |why: String| format!("invalid --revision-name template {template:?}: {why}");
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or_else(|| bad("unclosed {{".to_string()))?;
        let action = after[..end].trim();
        let mut words = action.split_whitespace();
        match (words.next(), words.next(), words.next()) {
            (Some(".Service"), None, None) => out.push_str(service),
            (Some(".Generation"), None, None) => out.push_str(&(generation + 1).to_string()),
            (Some(".Random"), Some(n), None) => {
                let n: usize = n
                    .parse()
                    .map_err(|_| bad(format!("{n:?} is not a number")))?;
                for _ in 0..n {
                    let i = usize::try_from(random() % CONSONANTS.len() as u64).unwrap_or(0);
                    out.push(char::from(CONSONANTS[i]));
                }
            }
            _ => {
                return Err(bad(format!(
                    "unknown action {action:?}: use {{{{.Service}}}}, {{{{.Generation}}}} or {{{{.Random N}}}}"
                )));
            }
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    if out.is_empty() {
        return Ok(out);
    }
    let prefix = format!("{service}-");
    if !out.starts_with(&prefix) {
        out = format!("{prefix}{out}");
    }
    Ok(out)
}

fn set_template_annotation(template: &mut RevisionTemplateSpec, key: &str, value: String) {
    template.metadata.annotations.insert(key.to_string(), value);
}

/// The container the flags edit: the first one, created if there is none (kn's
/// `containerOfPodSpec`).
fn first_container(template: &mut RevisionTemplateSpec) -> &mut Container {
    if template.spec.containers.is_empty() {
        template.spec.containers.push(Container::default());
    }
    &mut template.spec.containers[0]
}

impl EditFlags {
    /// Applies the flags to `service` (kn's `ConfigurationEditFlags.Apply`, in its order).
    pub fn apply(&self, service: &mut Service, ctx: &mut EditContext<'_>) -> Result<(), String> {
        let name = service.metadata.name.clone();
        let generation = service.metadata.generation;
        let mutation = self.any_mutation();
        let template = &mut service.spec.template;

        // PodSpec flags.
        if !self.env.is_empty()
            || !self.env_value_from.is_empty()
            || !self.env_file_lines.is_empty()
        {
            let (env, mut remove) =
                parse_pairs(&self.env).map_err(|e| format!("Invalid --env: {e}"))?;
            let (value_from, remove_from) = parse_pairs(&self.env_value_from)
                .map_err(|e| format!("Invalid --env-value-from: {e}"))?;
            let (file, _) = parse_pairs(&self.env_file_lines)
                .map_err(|e| format!("Invalid --env-file: {e}"))?;
            let mut set: Vec<EnvVar> = Vec::new();
            for (k, v) in env.into_iter().chain(file) {
                set.push(EnvVar {
                    name: k,
                    value: v,
                    value_from: None,
                });
            }
            for (k, spec) in value_from {
                set.push(EnvVar {
                    name: k,
                    value: String::new(),
                    value_from: Some(env_var_source(&spec)?),
                });
            }
            remove.extend(remove_from);
            update_env(first_container(template), set, &remove);
        }
        if !self.env_from.is_empty() {
            let container = first_container(template);
            for spec in &self.env_from {
                if spec == "-" {
                    return Err("\"-\" is not a valid value for \"--env-from\"".to_string());
                }
                if let Some(spec) = spec.strip_suffix('-') {
                    let (secret, name) = env_from_ref(spec)?;
                    container
                        .env_from
                        .retain(|s| !env_from_matches(s, secret, &name));
                    continue;
                }
                let (secret, name) = env_from_ref(spec)?;
                if container
                    .env_from
                    .iter()
                    .any(|s| env_from_matches(s, secret, &name))
                {
                    continue;
                }
                let r = Some(EnvSourceRef {
                    name,
                    optional: None,
                });
                container.env_from.push(if secret {
                    EnvFromSource {
                        secret_ref: r,
                        ..EnvFromSource::default()
                    }
                } else {
                    EnvFromSource {
                        config_map_ref: r,
                        ..EnvFromSource::default()
                    }
                });
            }
        }
        if let Some(image) = &self.image {
            first_container(template).image = image.clone();
        }
        if let Some(policy) = &self.pull_policy {
            let policy = match policy.to_ascii_lowercase().as_str() {
                "always" => "Always",
                "never" => "Never",
                "ifnotpresent" => "IfNotPresent",
                _ => {
                    return Err(format!(
                        "invalid --pull-policy {policy}. Valid arguments (case insensitive): Always | Never | IfNotPresent"
                    ));
                }
            };
            first_container(template).image_pull_policy = policy.to_string();
        }
        if !self.limits.is_empty() {
            update_resources(
                &mut first_container(template).resources.limits,
                &self.limits,
                "limit",
            )?;
        }
        if !self.requests.is_empty() {
            update_resources(
                &mut first_container(template).resources.requests,
                &self.requests,
                "request",
            )?;
        }
        if !self.cmd.is_empty() {
            first_container(template).command = self.cmd.clone();
        }
        if !self.args.is_empty() {
            first_container(template).args = self.args.clone();
        }
        if let Some(port) = &self.port {
            first_container(template).ports = vec![parse_port(port)?];
        }
        if let Some(sa) = &self.service_account {
            template.spec.service_account_name = sa.clone();
        }

        // Client-side revision naming.
        if let Some(t) = &self.revision_name
            && mutation
        {
            template.metadata.name = generate_revision_name(t, &name, generation, ctx.random)?;
        }
        if mutation {
            set_template_annotation(template, UPDATE_TIMESTAMP_ANNOTATION, ctx.now.to_string());
        }

        // Scaling.
        if let Some(n) = self.scale_min {
            set_template_annotation(template, keys::MIN_SCALE_ANNOTATION, n.to_string());
        }
        if let Some(n) = self.scale_max {
            set_template_annotation(template, keys::MAX_SCALE_ANNOTATION, n.to_string());
        }
        if let Some(scale) = &self.scale {
            if self.scale_max.is_some() {
                return Err("only --scale or --scale-max can be specified".to_string());
            }
            if self.scale_min.is_some() {
                return Err("only --scale or --scale-min can be specified".to_string());
            }
            let parse = |s: &str| {
                s.parse::<i64>()
                    .map_err(|e| format!("strconv.Atoi: parsing {s:?}: {e}"))
            };
            if let Some((min, max)) = scale.split_once("..") {
                if !min.is_empty() {
                    let min = parse(min)?;
                    set_template_annotation(template, keys::MIN_SCALE_ANNOTATION, min.to_string());
                }
                if !max.is_empty() {
                    let max = parse(max)?;
                    set_template_annotation(template, keys::MAX_SCALE_ANNOTATION, max.to_string());
                }
            } else if let Ok(n) = scale.parse::<i64>() {
                set_template_annotation(template, keys::MAX_SCALE_ANNOTATION, n.to_string());
                set_template_annotation(template, keys::MIN_SCALE_ANNOTATION, n.to_string());
            } else {
                return Err("Scale must be of the format x..y or x".to_string());
            }
        }
        if let Some(w) = &self.scale_window {
            check_go_duration(w)
                .map_err(|e| format!("invalid duration for 'scale-window': {e}"))?;
            set_template_annotation(template, keys::WINDOW_ANNOTATION, w.clone());
        }
        if let Some(n) = self.scale_target {
            set_template_annotation(template, keys::TARGET_ANNOTATION, n.to_string());
        }
        if let Some(m) = &self.scale_metric {
            set_template_annotation(template, keys::METRIC_ANNOTATION, m.clone());
        }
        if let Some(n) = self.scale_activation {
            set_template_annotation(template, keys::ACTIVATION_SCALE_ANNOTATION, n.to_string());
        }
        if let Some(n) = self.concurrency_limit {
            if n < 0 {
                return Err(format!(
                    "invalid concurrency-limit {n} (must not be less than 0)"
                ));
            }
            template.spec.container_concurrency = Some(n);
        }
        if let Some(n) = self.scale_utilization {
            set_template_annotation(
                template,
                keys::TARGET_UTILIZATION_PERCENTAGE_ANNOTATION,
                n.to_string(),
            );
        }

        // Visibility.
        if self.cluster_local {
            service.metadata.labels.insert(
                keys::VISIBILITY_LABEL.to_string(),
                keys::VISIBILITY_CLUSTER_LOCAL.to_string(),
            );
        } else if self.no_cluster_local {
            service.metadata.labels.remove(keys::VISIBILITY_LABEL);
        }

        // Labels: --label on both, --label-service / --label-revision on one (and winning).
        if !self.labels.is_empty()
            || !self.labels_service.is_empty()
            || !self.labels_revision.is_empty()
        {
            let all =
                map_allowing_singles(&self.labels).map_err(|e| format!("Invalid --label: {e}"))?;
            for (flag, specific, meta) in [
                ("label-service", &self.labels_service, &mut service.metadata),
                (
                    "label-revision",
                    &self.labels_revision,
                    &mut service.spec.template.metadata,
                ),
            ] {
                let mut labels = all.clone();
                let specific = map_allowing_singles(specific)
                    .map_err(|e| format!("Invalid --{flag}: Unable to parse label flags: {e}"))?;
                labels.extend(specific);
                let remove = take_removals(&mut labels);
                update_map(&mut meta.labels, &labels, &remove);
            }
        }

        // Annotations: --annotation on both (autoscaling ones on the template only).
        if !self.annotations.is_empty()
            || !self.annotations_service.is_empty()
            || !self.annotations_revision.is_empty()
        {
            let mut all = map_allowing_singles(&self.annotations)
                .map_err(|e| format!("Invalid --annotation: {e}"))?;
            let mut revision = map_allowing_singles(&self.annotations_revision)
                .map_err(|e| format!("Invalid --annotation-revision: {e}"))?;
            let mut svc = map_allowing_singles(&self.annotations_service)
                .map_err(|e| format!("Invalid --annotation-service: {e}"))?;
            let remove = take_removals(&mut all);
            let remove_revision = take_removals(&mut revision);
            let remove_service = take_removals(&mut svc);

            let mut rev_annotations = all.clone();
            rev_annotations.extend(revision);
            let rev_remove: Vec<String> = remove.iter().chain(&remove_revision).cloned().collect();
            update_map(
                &mut service.spec.template.metadata.annotations,
                &rev_annotations,
                &rev_remove,
            );

            let autoscaling = |k: &str| k.starts_with(keys::AUTOSCALING_GROUP);
            let mut svc_annotations: BTreeMap<String, String> =
                all.into_iter().filter(|(k, _)| !autoscaling(k)).collect();
            for (k, v) in svc {
                if autoscaling(&k) {
                    return Err(format!(
                        "service can not have auto-scaling related annotation: {k} , please update using '--annotation-revision'"
                    ));
                }
                svc_annotations.insert(k, v);
            }
            let svc_remove: Vec<String> = remove.iter().chain(&remove_service).cloned().collect();
            update_map(
                &mut service.metadata.annotations,
                &svc_annotations,
                &svc_remove,
            );
        }

        if let Some(n) = self.scale_init {
            if self
                .annotations
                .iter()
                .any(|a| a.contains(keys::INITIAL_SCALE_ANNOTATION))
            {
                return Err(format!(
                    "only one of the --scale-init or --annotation {} can be specified",
                    keys::INITIAL_SCALE_ANNOTATION
                ));
            }
            set_template_annotation(
                &mut service.spec.template,
                keys::INITIAL_SCALE_ANNOTATION,
                n.to_string(),
            );
        }
        if let Some(t) = self.timeout {
            service.spec.template.spec.timeout_seconds = Some(t);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    fn apply(flags: &EditFlags, svc: &mut Service) -> Result<(), String> {
        let mut n = 0u64;
        let mut random = move || {
            n += 1;
            n
        };
        let mut ctx = EditContext {
            now: "2026-01-02T03:04:05Z",
            random: &mut random,
        };
        flags.apply(svc, &mut ctx)
    }

    fn new_service() -> Service {
        let mut svc = Service::new("default", "hello");
        svc.spec.template.spec.containers.push(Container::default());
        svc
    }

    #[test]
    fn env_flag_parsing() {
        let (pairs, removals) =
            parse_pairs(&s(&["A=1", "B=x=y", "C-", "A=2", "D="])).unwrap_or_default();
        assert_eq!(
            pairs,
            vec![
                ("A".into(), "2".into()),
                ("B".into(), "x=y".into()),
                ("D".into(), String::new())
            ]
        );
        assert_eq!(removals, vec!["C".to_string()]);
        assert_eq!(
            parse_pairs(&s(&["NOPE"])).err().as_deref(),
            Some("argument requires a value that contains the \"=\" character; got \"NOPE\"")
        );
    }

    #[test]
    fn env_flags_edit_in_place() {
        let mut svc = new_service();
        svc.spec.template.spec.containers[0].env = vec![
            EnvVar {
                name: "KEEP".into(),
                value: "1".into(),
                value_from: None,
            },
            EnvVar {
                name: "CHANGE".into(),
                value: "old".into(),
                value_from: None,
            },
            EnvVar {
                name: "DROP".into(),
                value: "x".into(),
                value_from: None,
            },
        ];
        let flags = EditFlags {
            env: s(&["NEW=n", "CHANGE=new", "DROP-"]),
            env_value_from: s(&["PASSWORD=secret:db:password"]),
            ..EditFlags::default()
        };
        assert_eq!(apply(&flags, &mut svc), Ok(()));
        let env = &svc.spec.template.spec.containers[0].env;
        let names: Vec<&str> = env.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["KEEP", "CHANGE", "NEW", "PASSWORD"]);
        assert_eq!(env[1].value, "new");
        let secret = env[3]
            .value_from
            .as_ref()
            .and_then(|v| v.secret_key_ref.as_ref());
        assert_eq!(
            secret.map(|k| (k.name.as_str(), k.key.as_str())),
            Some(("db", "password"))
        );

        let bad = EditFlags {
            env: s(&["X"]),
            ..EditFlags::default()
        };
        assert_eq!(
            apply(&bad, &mut new_service()),
            Err("Invalid --env: argument requires a value that contains the \"=\" character; got \"X\"".into())
        );
        let bad = EditFlags {
            env_value_from: s(&["X=cm:only"]),
            ..EditFlags::default()
        };
        assert!(
            apply(&bad, &mut new_service()).is_err_and(|e| e.contains("resourceType:name:key"))
        );
    }

    #[test]
    fn env_from_add_and_remove() {
        let mut svc = new_service();
        let add = EditFlags {
            env_from: s(&["cm:conf", "secret:creds", "cm:conf"]),
            ..EditFlags::default()
        };
        assert_eq!(apply(&add, &mut svc), Ok(()));
        assert_eq!(svc.spec.template.spec.containers[0].env_from.len(), 2);
        let remove = EditFlags {
            env_from: s(&["cm:conf-"]),
            ..EditFlags::default()
        };
        assert_eq!(apply(&remove, &mut svc), Ok(()));
        let left = &svc.spec.template.spec.containers[0].env_from;
        assert_eq!(left.len(), 1);
        assert_eq!(
            left[0].secret_ref.as_ref().map(|r| r.name.as_str()),
            Some("creds")
        );
    }

    #[test]
    fn container_flags() {
        let mut svc = new_service();
        let flags = EditFlags {
            cmd: s(&["python3", "-m", "http.server"]),
            args: s(&["--bind", "0.0.0.0"]),
            port: Some("h2c:9000".into()),
            limits: s(&["cpu=1", "memory=256Mi"]),
            pull_policy: Some("ifnotpresent".into()),
            concurrency_limit: Some(10),
            timeout: Some(30),
            service_account: Some("robot".into()),
            ..EditFlags::default()
        };
        assert_eq!(apply(&flags, &mut svc), Ok(()));
        let t = &svc.spec.template;
        let c = &t.spec.containers[0];
        assert_eq!(c.command, s(&["python3", "-m", "http.server"]));
        assert_eq!(c.args, s(&["--bind", "0.0.0.0"]));
        assert_eq!(
            (c.ports[0].name.as_str(), c.ports[0].container_port),
            ("h2c", 9000)
        );
        assert_eq!(
            c.resources.limits.get("memory").map(|q| q.0.as_str()),
            Some("256Mi")
        );
        assert_eq!(c.image_pull_policy, "IfNotPresent");
        assert_eq!(t.spec.container_concurrency, Some(10));
        assert_eq!(t.spec.timeout_seconds, Some(30));
        assert_eq!(t.spec.service_account_name, "robot");
        assert_eq!(
            t.metadata
                .annotations
                .get(UPDATE_TIMESTAMP_ANNOTATION)
                .map(String::as_str),
            Some("2026-01-02T03:04:05Z")
        );

        let bad = EditFlags {
            port: Some("http:eighty".into()),
            ..EditFlags::default()
        };
        assert_eq!(
            apply(&bad, &mut new_service()),
            Err("the port specification 'http:eighty' is not valid. Please provide in the format 'NAME:PORT', where 'NAME' is optional. Examples: '--port h2c:8080' , '--port 8080'.".into())
        );
        let bad = EditFlags {
            concurrency_limit: Some(-1),
            ..EditFlags::default()
        };
        assert_eq!(
            apply(&bad, &mut new_service()),
            Err("invalid concurrency-limit -1 (must not be less than 0)".into())
        );
        let bad = EditFlags {
            pull_policy: Some("sometimes".into()),
            ..EditFlags::default()
        };
        assert!(apply(&bad, &mut new_service()).is_err());
    }

    #[test]
    fn scale_flags_become_template_annotations() {
        let ann = |svc: &Service, k: &str| svc.spec.template.metadata.annotations.get(k).cloned();
        let mut svc = new_service();
        let flags = EditFlags {
            scale_min: Some(1),
            scale_max: Some(5),
            scale_target: Some(20),
            scale_window: Some("1m30s".into()),
            scale_init: Some(2),
            ..EditFlags::default()
        };
        assert_eq!(apply(&flags, &mut svc), Ok(()));
        assert_eq!(ann(&svc, keys::MIN_SCALE_ANNOTATION).as_deref(), Some("1"));
        assert_eq!(ann(&svc, keys::MAX_SCALE_ANNOTATION).as_deref(), Some("5"));
        assert_eq!(ann(&svc, keys::TARGET_ANNOTATION).as_deref(), Some("20"));
        assert_eq!(ann(&svc, keys::WINDOW_ANNOTATION).as_deref(), Some("1m30s"));
        assert_eq!(
            ann(&svc, keys::INITIAL_SCALE_ANNOTATION).as_deref(),
            Some("2")
        );
        assert!(svc.metadata.annotations.is_empty());

        for (range, min, max) in [
            ("3", Some("3"), Some("3")),
            ("1..4", Some("1"), Some("4")),
            ("..7", None, Some("7")),
            ("2..", Some("2"), None),
        ] {
            let mut svc = new_service();
            let flags = EditFlags {
                scale: Some(range.into()),
                ..EditFlags::default()
            };
            assert_eq!(apply(&flags, &mut svc), Ok(()), "{range}");
            assert_eq!(
                ann(&svc, keys::MIN_SCALE_ANNOTATION).as_deref(),
                min,
                "{range}"
            );
            assert_eq!(
                ann(&svc, keys::MAX_SCALE_ANNOTATION).as_deref(),
                max,
                "{range}"
            );
        }
        let bad = EditFlags {
            scale: Some("x".into()),
            ..EditFlags::default()
        };
        assert_eq!(
            apply(&bad, &mut new_service()),
            Err("Scale must be of the format x..y or x".into())
        );
        let bad = EditFlags {
            scale: Some("1".into()),
            scale_max: Some(2),
            ..EditFlags::default()
        };
        assert_eq!(
            apply(&bad, &mut new_service()),
            Err("only --scale or --scale-max can be specified".into())
        );
        let bad = EditFlags {
            scale_window: Some("10".into()),
            ..EditFlags::default()
        };
        assert_eq!(
            apply(&bad, &mut new_service()),
            Err(
                "invalid duration for 'scale-window': time: missing unit in duration \"10\"".into()
            )
        );
        let bad = EditFlags {
            scale_init: Some(1),
            annotations: s(&["autoscaling.knative.dev/initial-scale=3"]),
            ..EditFlags::default()
        };
        assert!(
            apply(&bad, &mut new_service())
                .is_err_and(|e| e.starts_with("only one of the --scale-init"))
        );
    }

    #[test]
    fn annotations_and_labels_like_kn() {
        let mut svc = new_service();
        svc.metadata.annotations.insert("old".into(), "x".into());
        svc.spec
            .template
            .metadata
            .annotations
            .insert("old".into(), "x".into());
        let flags = EditFlags {
            annotations: s(&["team=blue", "autoscaling.knative.dev/max-scale=3", "old-"]),
            annotations_service: s(&["only-svc=1"]),
            annotations_revision: s(&["only-rev=1", "team=green"]),
            labels: s(&["app=web", "tier"]),
            labels_revision: s(&["app=rev"]),
            cluster_local: true,
            ..EditFlags::default()
        };
        assert_eq!(apply(&flags, &mut svc), Ok(()));
        let svc_ann: Vec<(&str, &str)> = svc
            .metadata
            .annotations
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(svc_ann, [("only-svc", "1"), ("team", "blue")]);
        let t = &svc.spec.template.metadata.annotations;
        assert_eq!(t.get("team").map(String::as_str), Some("green"));
        assert_eq!(
            t.get("autoscaling.knative.dev/max-scale")
                .map(String::as_str),
            Some("3")
        );
        assert!(
            t.contains_key("only-rev") && !t.contains_key("old") && !t.contains_key("only-svc")
        );
        assert_eq!(
            svc.metadata.labels.get("app").map(String::as_str),
            Some("web")
        );
        assert_eq!(
            svc.metadata.labels.get("tier").map(String::as_str),
            Some("")
        );
        assert_eq!(
            svc.metadata
                .labels
                .get(keys::VISIBILITY_LABEL)
                .map(String::as_str),
            Some("cluster-local")
        );
        assert_eq!(
            svc.spec
                .template
                .metadata
                .labels
                .get("app")
                .map(String::as_str),
            Some("rev")
        );

        let bad = EditFlags {
            annotations_service: s(&["autoscaling.knative.dev/min-scale=1"]),
            ..EditFlags::default()
        };
        assert!(
            apply(&bad, &mut new_service()).is_err_and(
                |e| e.starts_with("service can not have auto-scaling related annotation")
            )
        );
        let bad = EditFlags {
            labels: s(&["a=1", "a=2"]),
            ..EditFlags::default()
        };
        assert_eq!(
            apply(&bad, &mut new_service()),
            Err("Invalid --label: The key \"a\" has been duplicate in [a=1 a=2]".into())
        );

        let remove = EditFlags {
            labels: s(&["app-"]),
            no_cluster_local: true,
            ..EditFlags::default()
        };
        assert_eq!(apply(&remove, &mut svc), Ok(()));
        assert!(!svc.metadata.labels.contains_key("app"));
        assert!(!svc.metadata.labels.contains_key(keys::VISIBILITY_LABEL));
    }

    #[test]
    fn revision_names() {
        let mut n = 0u64;
        let mut random = move || {
            n += 1;
            n
        };
        let name = |t: &str, r: &mut dyn FnMut() -> u64| generate_revision_name(t, "hello", 2, r);
        assert_eq!(name("hello-v3", &mut random).as_deref(), Ok("hello-v3"));
        assert_eq!(name("v3", &mut random).as_deref(), Ok("hello-v3"));
        assert_eq!(
            name("{{.Service}}-{{.Generation}}", &mut random).as_deref(),
            Ok("hello-3")
        );
        assert_eq!(
            name("{{.Service}}-{{.Random 5}}-{{.Generation}}", &mut random).as_deref(),
            Ok("hello-cdfgh-3")
        );
        assert_eq!(name("", &mut random).as_deref(), Ok(""));
        assert!(name("{{.Nope}}", &mut random).is_err());
        assert!(name("{{.Service", &mut random).is_err());

        let mut svc = new_service();
        svc.metadata.generation = 4;
        let flags = EditFlags {
            revision_name: Some("{{.Service}}-v{{.Generation}}".into()),
            ..EditFlags::default()
        };
        assert_eq!(apply(&flags, &mut svc), Ok(()));
        assert_eq!(svc.spec.template.metadata.name, "hello-v5");
    }

    #[test]
    fn go_durations() {
        for ok in ["10s", "1m30s", "1.5h", "300ms", "0", "-2m"] {
            assert_eq!(check_go_duration(ok), Ok(()), "{ok}");
        }
        for bad in ["", "10", "1x", "s", "1..5s"] {
            assert!(check_go_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn mutation_detection() {
        assert!(!EditFlags::default().any());
        assert!(
            EditFlags {
                env: s(&["A=1"]),
                ..EditFlags::default()
            }
            .any_mutation()
        );
        let visibility_only = EditFlags {
            cluster_local: true,
            ..EditFlags::default()
        };
        assert!(visibility_only.any() && !visibility_only.any_mutation());
    }
}
