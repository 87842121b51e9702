//! Validation of a revision's PodSpec subset (knative/serving `pkg/apis/serving/k8s_validation.go`
//! and `RevisionSpec.Validate`). Paths are relative to the RevisionSpec; quirks of Knative's
//! paths (e.g. `ports.containerPort` without an index) are kept so messages match Knative's.

use std::collections::{BTreeMap, BTreeSet};

use super::config::Config;
use crate::core::{
    Container, ContainerPort, EnvFromSource, EnvVar, IntOrString, KeyToPath, PodSecurityContext,
    Probe, SecurityContext, Volume, VolumeMount, VolumeProjection,
};
use crate::naming;
use crate::serving::{RESERVED_ENV_VARS, RESERVED_PORTS, RevisionSpec};
use crate::validation::{FieldErrors, Reason};

const MAX_ID: i64 = i32::MAX as i64;

/// Which kind of container a rule is looking at (Knative's context keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    User,
    Sidecar,
    Init,
}

/// `RevisionSpec.Validate`: the PodSpec, `timeoutSeconds` and `containerConcurrency`.
pub(crate) fn validate_revision_spec(spec: &RevisionSpec, cfg: &Config) -> FieldErrors {
    let mut errs = validate_pod_spec(spec, cfg);
    if let Some(t) = spec.timeout_seconds
        && t != 0
        && (t > cfg.defaults.max_revision_timeout_seconds || t < 0)
    {
        errs.also(FieldErrors::out_of_bounds(
            t,
            0,
            cfg.defaults.max_revision_timeout_seconds,
            "timeoutSeconds",
        ));
    }
    if let Some(cc) = spec.container_concurrency {
        let min = if cfg.defaults.allow_container_concurrency_zero {
            0
        } else {
            1
        };
        let max = cfg.defaults.container_concurrency_max_limit;
        if cc < min || cc > max {
            errs.also(FieldErrors::out_of_bounds(
                cc,
                min,
                max,
                "containerConcurrency",
            ));
        }
    }
    errs
}

fn disallowed_pod_fields(ps: &RevisionSpec, cfg: &Config) -> Vec<&'static str> {
    let f = &cfg.features;
    let mut out = Vec::new();
    let mut check = |set: bool, enabled: bool, name: &'static str| {
        if set && !enabled {
            out.push(name);
        }
    };
    check(ps.affinity.is_some(), f.pod_spec_affinity, "affinity");
    check(
        ps.automount_service_account_token == Some(true),
        false,
        "automountServiceAccountToken",
    );
    check(ps.dns_config.is_some(), f.pod_spec_dns_config, "dnsConfig");
    check(
        !ps.dns_policy.is_empty(),
        f.pod_spec_dns_policy,
        "dnsPolicy",
    );
    check(
        ps.host_aliases.is_some(),
        f.pod_spec_host_aliases,
        "hostAliases",
    );
    check(ps.host_ipc, f.pod_spec_host_ipc, "hostIPC");
    check(ps.host_network, f.pod_spec_host_network, "hostNetwork");
    check(ps.host_pid, f.pod_spec_host_pid, "hostPID");
    check(
        !ps.init_containers.is_empty(),
        f.pod_spec_init_containers,
        "initContainers",
    );
    check(
        !ps.node_selector.is_empty(),
        f.pod_spec_node_selector,
        "nodeSelector",
    );
    check(
        !ps.priority_class_name.is_empty(),
        f.pod_spec_priority_class_name,
        "priorityClassName",
    );
    check(
        ps.runtime_class_name.is_some(),
        f.pod_spec_runtime_class_name,
        "runtimeClassName",
    );
    check(
        !ps.scheduler_name.is_empty(),
        f.pod_spec_scheduler_name,
        "schedulerName",
    );
    check(
        ps.security_context.is_some(),
        f.pod_spec_security_context,
        "securityContext",
    );
    check(
        ps.share_process_namespace.is_some(),
        f.pod_spec_share_process_namespace,
        "shareProcessNamespace",
    );
    check(
        ps.tolerations.is_some(),
        f.pod_spec_tolerations,
        "tolerations",
    );
    check(
        ps.topology_spread_constraints.is_some(),
        f.pod_spec_topology_spread_constraints,
        "topologySpreadConstraints",
    );
    out
}

/// `serving.ValidatePodSpec`.
pub(crate) fn validate_pod_spec(ps: &RevisionSpec, cfg: &Config) -> FieldErrors {
    let mut errs = FieldErrors::new();
    let disallowed = disallowed_pod_fields(ps, cfg);
    if !disallowed.is_empty() {
        errs.also(FieldErrors::disallowed(&disallowed));
    }
    if let Some(sc) = &ps.security_context {
        errs.also(validate_pod_security_context(sc, cfg).via_field("securityContext"));
    }

    let mut mounted = BTreeSet::new();
    for c in ps.init_containers.iter().chain(&ps.containers) {
        for vm in &c.volume_mounts {
            mounted.insert(vm.name.clone());
        }
    }
    let (volumes, verrs) = validate_volumes(&ps.volumes, &mounted, cfg);
    errs.also(verrs.via_field("volumes"));

    errs.also(validate_init_containers(
        &ps.init_containers,
        &ps.containers,
        &volumes,
        cfg,
    ));

    let (port, perrs) = validate_containers_ports(&ps.containers);
    errs.also(perrs.via_field("containers[*]"));

    match ps.containers.len() {
        0 => {
            errs.also(FieldErrors::missing(&["containers"]));
        }
        1 => {
            errs.also(
                validate_user_container(&ps.containers[0], &volumes, &port, Role::User, cfg)
                    .via_field_index("containers", 0),
            );
        }
        _ => {
            errs.also(validate_containers(&ps.containers, &volumes, &port, cfg));
        }
    }
    if !ps.service_account_name.is_empty() {
        for m in naming::is_dns1123_subdomain(&ps.service_account_name) {
            errs.also(FieldErrors::invalid_value(
                &ps.service_account_name,
                "serviceAccountName",
                &m,
            ));
        }
    }
    errs
}

fn validate_init_containers(
    inits: &[Container],
    others: &[Container],
    volumes: &BTreeMap<String, Volume>,
    cfg: &Config,
) -> FieldErrors {
    let mut errs = FieldErrors::new();
    if inits.is_empty() {
        return errs;
    }
    if !cfg.features.pod_spec_init_containers {
        errs.also(FieldErrors::generic(
            Reason::FieldValueForbidden,
            format!(
                "pod spec support for init-containers is off, but found {} init containers",
                inits.len()
            ),
            &[""],
        ));
        return errs;
    }
    let names: BTreeSet<&str> = others.iter().map(|c| c.name.as_str()).collect();
    for (i, c) in inits.iter().enumerate() {
        let mut cerrs = FieldErrors::new();
        if names.contains(c.name.as_str()) {
            cerrs.also(FieldErrors::generic(
                Reason::FieldValueDuplicate,
                format!("duplicate container name {:?}", c.name),
                &["name"],
            ));
        }
        for (set, field) in [
            (c.liveness_probe.is_some(), "livenessProbe"),
            (c.readiness_probe.is_some(), "readinessProbe"),
            (c.startup_probe.is_some(), "startupProbe"),
            (c.lifecycle.is_some(), "lifecycle"),
        ] {
            if set {
                cerrs.also(FieldErrors::generic(
                    Reason::FieldValueForbidden,
                    "field not allowed in an init container",
                    &[field],
                ));
            }
        }
        cerrs.also(validate_container(c, volumes, Role::Init, cfg));
        errs.also(cerrs.via_field_index("initContainers", i));
    }
    errs
}

fn validate_containers(
    containers: &[Container],
    volumes: &BTreeMap<String, Volume>,
    port: &ContainerPort,
    cfg: &Config,
) -> FieldErrors {
    let mut errs = FieldErrors::new();
    if !cfg.features.multi_container {
        errs.also(FieldErrors::generic(
            Reason::FieldValueForbidden,
            format!(
                "multi-container is off, but found {} containers",
                containers.len()
            ),
            &[""],
        ));
        return errs;
    }
    let mut names = BTreeSet::new();
    for (i, c) in containers.iter().enumerate() {
        if !names.insert(c.name.as_str()) {
            errs.also(
                FieldErrors::generic(
                    Reason::FieldValueDuplicate,
                    format!("duplicate container name {:?}", c.name),
                    &["name"],
                )
                .via_field_index("containers", i),
            );
        }
        let cerrs = if c.ports.is_empty() {
            validate_sidecar_container(c, volumes, cfg)
        } else {
            validate_user_container(c, volumes, port, Role::User, cfg)
        };
        errs.also(cerrs.via_field_index("containers", i));
    }
    errs
}

/// The serving port across all containers, and errors if there is not exactly one when
/// several containers exist.
fn validate_containers_ports(containers: &[Container]) -> (ContainerPort, FieldErrors) {
    let mut count = 0;
    let mut port = ContainerPort::default();
    for c in containers {
        if let Some(p) = c.ports.first() {
            count += c.ports.len();
            port = p.clone();
        }
    }
    if port.name.is_empty() {
        port.name = "http".to_string();
    }
    if port.container_port == 0 {
        port.container_port = crate::serving::DEFAULT_USER_PORT;
    }
    let mut errs = FieldErrors::new();
    if count == 0 && containers.len() > 1 {
        errs.also(FieldErrors::missing(&["ports"]));
    } else if count > 1 {
        errs.also(FieldErrors::generic_details(
            Reason::FieldValueInvalid,
            "more than one container port is set",
            "Only a single port is allowed across all containers",
            &["ports"],
        ));
    }
    (port, errs)
}

/// Names of the fields set on a probe (what Knative's mask-against-empty reports).
fn probe_set_fields(p: &Probe) -> Vec<&'static str> {
    let mut v = Vec::new();
    let mut add = |set: bool, n: &'static str| {
        if set {
            v.push(n);
        }
    };
    add(p.exec.is_some(), "exec");
    add(p.failure_threshold != 0, "failureThreshold");
    add(p.grpc.is_some(), "grpc");
    add(p.http_get.is_some(), "httpGet");
    add(p.initial_delay_seconds != 0, "initialDelaySeconds");
    add(p.period_seconds != 0, "periodSeconds");
    add(p.success_threshold != 0, "successThreshold");
    add(p.tcp_socket.is_some(), "tcpSocket");
    add(
        p.termination_grace_period_seconds.is_some(),
        "terminationGracePeriodSeconds",
    );
    add(p.timeout_seconds != 0, "timeoutSeconds");
    v
}

fn validate_sidecar_container(
    c: &Container,
    volumes: &BTreeMap<String, Volume>,
    cfg: &Config,
) -> FieldErrors {
    let mut errs = FieldErrors::new();
    if cfg.features.multi_container_probing {
        if let Some(p) = &c.liveness_probe {
            errs.also(validate_probe(p, None).via_field("livenessProbe"));
        }
        if let Some(p) = &c.readiness_probe {
            errs.also(validate_readiness_probe(p, None).via_field("readinessProbe"));
        }
        if let Some(p) = &c.startup_probe {
            errs.also(validate_probe(p, None).via_field("startupProbe"));
        }
    } else {
        for (p, field) in [
            (&c.liveness_probe, "livenessProbe"),
            (&c.readiness_probe, "readinessProbe"),
            (&c.startup_probe, "startupProbe"),
        ] {
            if let Some(p) = p {
                let set = probe_set_fields(p);
                if !set.is_empty() {
                    errs.also(FieldErrors::disallowed(&set).via_field(field));
                }
            }
        }
    }
    errs.also(validate_container(c, volumes, Role::Sidecar, cfg));
    errs
}

fn validate_user_container(
    c: &Container,
    volumes: &BTreeMap<String, Volume>,
    port: &ContainerPort,
    role: Role,
    cfg: &Config,
) -> FieldErrors {
    let mut errs = FieldErrors::new();
    if let Some(p) = &c.liveness_probe {
        errs.also(validate_probe(p, Some(port)).via_field("livenessProbe"));
    }
    if let Some(p) = &c.readiness_probe {
        errs.also(validate_readiness_probe(p, Some(port)).via_field("readinessProbe"));
    }
    if let Some(p) = &c.startup_probe {
        errs.also(validate_probe(p, Some(port)).via_field("startupProbe"));
    }
    errs.also(validate_container(c, volumes, role, cfg));
    errs
}

fn validate_readiness_probe(p: &Probe, port: Option<&ContainerPort>) -> FieldErrors {
    let mut errs = validate_probe(p, port);
    if p.period_seconds < 0 {
        errs.also(FieldErrors::out_of_bounds(
            p.period_seconds,
            0,
            MAX_ID,
            "periodSeconds",
        ));
    }
    if p.initial_delay_seconds < 0 {
        errs.also(FieldErrors::out_of_bounds(
            p.initial_delay_seconds,
            0,
            MAX_ID,
            "initialDelaySeconds",
        ));
    }
    if p.success_threshold < 1 {
        errs.also(FieldErrors::out_of_bounds(
            p.success_threshold,
            1,
            MAX_ID,
            "successThreshold",
        ));
    }
    if p.period_seconds == 0 {
        if p.failure_threshold != 0 {
            errs.also(FieldErrors::generic(
                Reason::FieldValueForbidden,
                "failureThreshold is disallowed when periodSeconds is zero",
                &["failureThreshold"],
            ));
        }
        if p.timeout_seconds != 0 {
            errs.also(FieldErrors::generic(
                Reason::FieldValueForbidden,
                "timeoutSeconds is disallowed when periodSeconds is zero",
                &["timeoutSeconds"],
            ));
        }
    } else {
        if p.timeout_seconds < 1 {
            errs.also(FieldErrors::out_of_bounds(
                p.timeout_seconds,
                1,
                MAX_ID,
                "timeoutSeconds",
            ));
        }
        if p.failure_threshold < 1 {
            errs.also(FieldErrors::out_of_bounds(
                p.failure_threshold,
                1,
                MAX_ID,
                "failureThreshold",
            ));
        }
    }
    errs
}

/// `port` is the serving port for the user container, `None` for a probed sidecar.
fn validate_probe(p: &Probe, port: Option<&ContainerPort>) -> FieldErrors {
    let mut errs = FieldErrors::new();
    let check_port = |errs: &mut FieldErrors, probe_port: &IntOrString, field: &str| match port {
        Some(port) => {
            if let IntOrString::String(s) = probe_port
                && !s.is_empty()
                && *s != port.name
            {
                errs.also(FieldErrors::invalid_value(
                    s,
                    field,
                    "Probe port must match container port",
                ));
            }
        }
        None => {
            if probe_port.is_unset() {
                errs.also(FieldErrors::invalid_value(
                    probe_port,
                    field,
                    "Probe port must be specified",
                ));
            }
        }
    };
    if let Some(h) = &p.http_get {
        check_port(&mut errs, &h.port, "httpGet.port");
    }
    if let Some(t) = &p.tcp_socket {
        check_port(&mut errs, &t.port, "tcpSocket.port");
    }
    let handlers = p.handlers();
    if handlers.is_empty() {
        errs.also(FieldErrors::missing_one_of(&[
            "httpGet",
            "tcpSocket",
            "exec",
            "grpc",
        ]));
    } else if handlers.len() > 1 {
        errs.also(FieldErrors::multiple_one_of(&handlers));
    }
    errs
}

fn container_disallowed_fields(c: &Container) -> Vec<&'static str> {
    let mut v = Vec::new();
    let mut add = |set: bool, n: &'static str| {
        if set {
            v.push(n);
        }
    };
    add(c.lifecycle.is_some(), "lifecycle");
    add(c.resize_policy.is_some(), "resizePolicy");
    add(c.restart_policy.is_some(), "restartPolicy");
    add(c.stdin, "stdin");
    add(c.stdin_once, "stdinOnce");
    add(c.tty, "tty");
    add(c.volume_devices.is_some(), "volumeDevices");
    v
}

/// Knative's `validate(ctx, container, volumes)`, with wisp's extension: a container with a
/// `command` may omit `image` (it runs as a host process).
fn validate_container(
    c: &Container,
    volumes: &BTreeMap<String, Volume>,
    role: Role,
    cfg: &Config,
) -> FieldErrors {
    let mut errs = FieldErrors::new();
    if *c == Container::default() {
        return FieldErrors::missing(&[""]);
    }
    let disallowed = container_disallowed_fields(c);
    if !disallowed.is_empty() {
        errs.also(FieldErrors::disallowed(&disallowed));
    }
    if c.name == "queue-proxy" {
        errs.also(FieldErrors::generic(
            Reason::FieldValueInvalid,
            format!("{:?} is a reserved container name", c.name),
            &["name"],
        ));
    }
    errs.also(validate_env(&c.env, role, cfg).via_field("env"));
    errs.also(validate_env_from(&c.env_from).via_field("envFrom"));
    if c.image.is_empty() {
        if c.command.is_empty() {
            errs.also(FieldErrors::missing(&["image"]));
        }
    } else if let Err(e) = check_image_reference(&c.image) {
        errs.also(FieldErrors::generic_details(
            Reason::FieldValueInvalid,
            "Failed to parse image reference",
            &format!("image: {:?}, error: {e}", c.image),
            &["image"],
        ));
    }
    if role == Role::Init {
        for p in &c.ports {
            errs.also(validate_container_port_basic(p).via_field("ports"));
        }
    } else if let Some(p) = c.ports.first() {
        let mut perrs = validate_container_port_basic(p);
        if !p.protocol.is_empty() && p.protocol != "TCP" {
            perrs.also(FieldErrors::invalid_value(&p.protocol, "protocol", ""));
        }
        if !["h2c", "http1", ""].contains(&p.name.as_str()) {
            perrs.also(FieldErrors::generic_details(
                Reason::FieldValueNotSupported,
                format!("Port name {} is not allowed", p.name),
                "Name must be empty, or one of: 'h2c', 'http1'",
                &[""],
            ));
        }
        errs.also(perrs.via_field("ports"));
    }
    if let Some(claims) = &c.resources.claims
        && !claims.is_null()
    {
        errs.also(FieldErrors::disallowed(&["claims"]).via_field("resources"));
    }
    if let Some(sc) = &c.security_context {
        errs.also(validate_security_context(sc, cfg).via_field("securityContext"));
    }
    match c.termination_message_policy.as_str() {
        "" | "File" | "FallbackToLogsOnError" => {}
        other => {
            errs.also(FieldErrors::invalid_value(
                other,
                "terminationMessagePolicy",
                "",
            ));
        }
    }
    errs.also(validate_volume_mounts(&c.volume_mounts, volumes, cfg).via_field("volumeMounts"));
    errs
}

fn validate_container_port_basic(p: &ContainerPort) -> FieldErrors {
    let mut errs = FieldErrors::new();
    let mut disallowed = Vec::new();
    if !p.host_ip.is_empty() {
        disallowed.push("hostIP");
    }
    if p.host_port != 0 {
        disallowed.push("hostPort");
    }
    if !disallowed.is_empty() {
        errs.also(FieldErrors::disallowed(&disallowed));
    }
    if RESERVED_PORTS.contains(&p.container_port) {
        errs.also(FieldErrors::invalid_value(
            format!("{} is a reserved port", p.container_port),
            "containerPort",
            &format!(
                "{} is a reserved port, please use a different value",
                p.container_port
            ),
        ));
    }
    if p.container_port < 0 || p.container_port > 65535 {
        errs.also(FieldErrors::out_of_bounds(
            p.container_port,
            0,
            65535,
            "containerPort",
        ));
    }
    errs
}

fn validate_env(env: &[EnvVar], role: Role, cfg: &Config) -> FieldErrors {
    let mut errs = FieldErrors::new();
    for (i, e) in env.iter().enumerate() {
        let mut eerrs = FieldErrors::new();
        let reserved = match role {
            Role::User => RESERVED_ENV_VARS.contains(&e.name.as_str()),
            Role::Sidecar | Role::Init => {
                e.name != "PORT" && RESERVED_ENV_VARS.contains(&e.name.as_str())
            }
        };
        if e.name.is_empty() {
            eerrs.also(FieldErrors::missing(&["name"]));
        } else if reserved {
            eerrs.also(FieldErrors::generic(
                Reason::FieldValueInvalid,
                format!("{:?} is a reserved environment variable", e.name),
                &["name"],
            ));
        }
        if let Some(src) = &e.value_from {
            let mut disallowed = Vec::new();
            if !cfg.features.pod_spec_field_ref {
                if src.field_ref.is_some() {
                    disallowed.push("fieldRef");
                }
                if src.resource_field_ref.is_some() {
                    disallowed.push("resourceFieldRef");
                }
            }
            if src.file_key_ref.is_some() {
                disallowed.push("fileKeyRef");
            }
            if !disallowed.is_empty() {
                eerrs.also(FieldErrors::disallowed(&disallowed).via_field("valueFrom"));
            }
        }
        errs.also(eerrs.via_index(i));
    }
    errs
}

fn validate_env_from(list: &[EnvFromSource]) -> FieldErrors {
    let mut errs = FieldErrors::new();
    for e in list {
        // Knative reports these without the index.
        match (&e.config_map_ref, &e.secret_ref) {
            (Some(_), Some(_)) => {
                errs.also(FieldErrors::multiple_one_of(&["configMapRef", "secretRef"]));
            }
            (None, None) => {
                errs.also(FieldErrors::missing_one_of(&["configMapRef", "secretRef"]));
            }
            _ => {}
        }
    }
    errs
}

fn validate_security_context(sc: &SecurityContext, cfg: &Config) -> FieldErrors {
    let mut errs = FieldErrors::new();
    let mut disallowed = Vec::new();
    if sc.app_armor_profile.is_some() {
        disallowed.push("appArmorProfile");
    }
    if sc.privileged == Some(true) {
        disallowed.push("privileged");
    }
    if sc.proc_mount.is_some() {
        disallowed.push("procMount");
    }
    if sc.se_linux_options.is_some() {
        disallowed.push("seLinuxOptions");
    }
    if sc.windows_options.is_some() {
        disallowed.push("windowsOptions");
    }
    if !disallowed.is_empty() {
        errs.also(FieldErrors::disallowed(&disallowed));
    }
    if let Some(caps) = &sc.capabilities
        && caps.add.is_some()
        && !cfg.features.container_spec_add_capabilities
    {
        errs.also(FieldErrors::disallowed(&["add"]).via_field("capabilities"));
    }
    if let Some(uid) = sc.run_as_user
        && !(0..=MAX_ID).contains(&uid)
    {
        errs.also(FieldErrors::out_of_bounds(uid, 0, MAX_ID, "runAsUser"));
    }
    if let Some(gid) = sc.run_as_group
        && !(0..=MAX_ID).contains(&gid)
    {
        errs.also(FieldErrors::out_of_bounds(gid, 0, MAX_ID, "runAsGroup"));
    }
    errs
}

fn validate_pod_security_context(sc: &PodSecurityContext, cfg: &Config) -> FieldErrors {
    let mut errs = FieldErrors::new();
    let mut disallowed = Vec::new();
    let enabled = cfg.features.pod_spec_security_context;
    let mut add = |set: bool, allowed: bool, n: &'static str| {
        if set && !allowed {
            disallowed.push(n);
        }
    };
    add(sc.fs_group.is_some(), enabled, "fsGroup");
    add(
        sc.fs_group_change_policy.is_some(),
        false,
        "fsGroupChangePolicy",
    );
    add(sc.run_as_group.is_some(), enabled, "runAsGroup");
    add(sc.run_as_non_root.is_some(), enabled, "runAsNonRoot");
    add(sc.run_as_user.is_some(), enabled, "runAsUser");
    add(sc.se_linux_options.is_some(), false, "seLinuxOptions");
    add(sc.seccomp_profile.is_some(), enabled, "seccompProfile");
    add(
        !sc.supplemental_groups.is_empty(),
        enabled,
        "supplementalGroups",
    );
    add(sc.sysctls.is_some(), false, "sysctls");
    add(sc.windows_options.is_some(), false, "windowsOptions");
    if !disallowed.is_empty() {
        errs.also(FieldErrors::disallowed(&disallowed));
    }
    for (v, field) in [
        (sc.run_as_user, "runAsUser"),
        (sc.run_as_group, "runAsGroup"),
        (sc.fs_group, "fsGroup"),
    ] {
        if let Some(v) = v
            && !(0..=MAX_ID).contains(&v)
        {
            errs.also(FieldErrors::out_of_bounds(v, 0, MAX_ID, field));
        }
    }
    for (i, g) in sc.supplemental_groups.iter().enumerate() {
        if !(0..=MAX_ID).contains(g) {
            errs.also(
                FieldErrors::out_of_bounds(g, 0, MAX_ID, "")
                    .via_field_index("supplementalGroups", i),
            );
        }
    }
    errs
}

/// Go's `path.Clean`.
pub(crate) fn clean_path(p: &str) -> String {
    if p.is_empty() {
        return ".".to_string();
    }
    let rooted = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|l| *l != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            s => parts.push(s),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

fn validate_volume_mounts(
    mounts: &[VolumeMount],
    volumes: &BTreeMap<String, Volume>,
    cfg: &Config,
) -> FieldErrors {
    let mut errs = FieldErrors::new();
    let mut seen_paths = BTreeSet::new();
    for (i, vm) in mounts.iter().enumerate() {
        let mut merrs = FieldErrors::new();
        let mut disallowed = Vec::new();
        if vm.mount_propagation.is_some() && !cfg.features.pod_spec_volumes_mount_propagation {
            disallowed.push("mountPropagation");
        }
        if vm.recursive_read_only.is_some() {
            disallowed.push("recursiveReadOnly");
        }
        if !vm.sub_path_expr.is_empty() {
            disallowed.push("subPathExpr");
        }
        if !disallowed.is_empty() {
            merrs.also(FieldErrors::disallowed(&disallowed));
        }
        let vol = volumes.get(&vm.name);
        if vol.is_none() {
            merrs.also(FieldErrors::generic(
                Reason::FieldValueNotSupported,
                "volumeMount has no matching volume",
                &["name"],
            ));
        }
        let clean = clean_path(&vm.mount_path);
        if vm.mount_path.is_empty() {
            merrs.also(FieldErrors::missing(&["mountPath"]));
        } else if ["/", "/dev", "/dev/log"].contains(&clean.as_str()) {
            merrs.also(FieldErrors::generic(
                Reason::FieldValueInvalid,
                format!("mountPath {clean:?} is a reserved path"),
                &["mountPath"],
            ));
        } else if !vm.mount_path.starts_with('/') {
            merrs.also(FieldErrors::invalid_value(&vm.mount_path, "mountPath", ""));
        } else if seen_paths.contains(&clean) {
            merrs.push(crate::validation::FieldError::new(
                Reason::FieldValueDuplicate,
                format!("invalid value: {:?} must be unique", vm.mount_path),
                "mountPath",
            ));
        }
        seen_paths.insert(clean);
        let writable_kind = vol.is_some_and(|v| {
            v.empty_dir.is_some() || v.persistent_volume_claim.is_some() || v.ephemeral.is_some()
        });
        if !writable_kind && !vm.read_only {
            merrs.also(FieldErrors::generic(
                Reason::FieldValueInvalid,
                "volume mount should be readOnly for this type of volume",
                &["readOnly"],
            ));
        }
        if let Some(mp) = &vm.mount_propagation
            && mp != "None"
            && mp != "HostToContainer"
        {
            merrs.also(FieldErrors::generic(
                Reason::FieldValueNotSupported,
                "mount propagation should be set to None or HostToContainer",
                &["mountPropagation"],
            ));
        }
        if let Some(pvc) = vol.and_then(|v| v.persistent_volume_claim.as_ref())
            && pvc.read_only
            && !vm.read_only
        {
            merrs.also(FieldErrors::generic(
                Reason::FieldValueInvalid,
                "volume is readOnly but volume mount is not",
                &["readOnly"],
            ));
        }
        errs.also(merrs.via_index(i));
    }
    errs
}

fn validate_volumes(
    vs: &[Volume],
    mounted: &BTreeSet<String>,
    cfg: &Config,
) -> (BTreeMap<String, Volume>, FieldErrors) {
    let mut volumes = BTreeMap::new();
    let mut errs = FieldErrors::new();
    for (i, v) in vs.iter().enumerate() {
        let mut verrs = FieldErrors::new();
        if volumes.contains_key(&v.name) {
            verrs.also(FieldErrors::generic(
                Reason::FieldValueDuplicate,
                format!("duplicate volume name {:?}", v.name),
                &["name"],
            ));
        }
        if !mounted.contains(&v.name) {
            verrs.also(FieldErrors::generic(
                Reason::FieldValueInvalid,
                format!("volume with name {:?} not mounted", v.name),
                &["name"],
            ));
        }
        verrs.also(validate_volume(v, cfg));
        errs.also(verrs.via_index(i));
        volumes.insert(v.name.clone(), v.clone());
    }
    (volumes, errs)
}

fn validate_volume(v: &Volume, cfg: &Config) -> FieldErrors {
    let f = &cfg.features;
    let mut errs = FieldErrors::new();
    let forbidden = |msg: String| FieldErrors::generic(Reason::FieldValueForbidden, msg, &[""]);
    if let Some(pvc) = &v.persistent_volume_claim {
        if !f.pod_spec_persistent_volume_claim {
            errs.also(forbidden(format!(
                "Persistent volume claim support is disabled, but found persistent volume claim {}",
                pvc.claim_name
            )));
        }
        if !pvc.read_only && !f.pod_spec_persistent_volume_write {
            errs.also(forbidden(format!(
                "Persistent volume write support is disabled, but found persistent volume claim {} that is not read-only",
                pvc.claim_name
            )));
        }
    }
    let gated: [(bool, bool, &str, &'static str); 5] = [
        (
            v.image.is_some(),
            f.pod_spec_volumes_image,
            "Image",
            "image",
        ),
        (
            v.empty_dir.is_some(),
            f.pod_spec_volumes_empty_dir,
            "EmptyDir",
            "emptyDir",
        ),
        (
            v.host_path.is_some(),
            f.pod_spec_volumes_host_path,
            "HostPath",
            "hostPath",
        ),
        (v.csi.is_some(), f.pod_spec_volumes_csi, "CSI", "csi"),
        (
            v.ephemeral.is_some(),
            f.pod_spec_volumes_ephemeral,
            "Ephemeral",
            "ephemeral",
        ),
    ];
    let mut disallowed = Vec::new();
    for (set, enabled, label, field) in gated {
        if set && !enabled {
            errs.also(forbidden(format!(
                "{label} volume support is disabled, but found {label} volume {}",
                v.name
            )));
            disallowed.push(field);
        }
    }
    if v.persistent_volume_claim.is_some() && !f.pod_spec_persistent_volume_claim {
        disallowed.push("persistentVolumeClaim");
    }
    if !disallowed.is_empty() {
        disallowed.sort_unstable();
        errs.also(FieldErrors::disallowed(&disallowed));
    }
    if v.name.is_empty() {
        errs.also(FieldErrors::missing(&["name"]));
    } else if !naming::is_dns1123_label(&v.name).is_empty() {
        errs.also(FieldErrors::invalid_value(&v.name, "name", ""));
    }

    let mut specified: Vec<&str> = Vec::new();
    if let Some(s) = &v.secret {
        specified.push("secret");
        for (i, item) in s.items.iter().enumerate() {
            errs.also(validate_key_to_path(item).via_field_index("items", i));
        }
    }
    if let Some(c) = &v.config_map {
        specified.push("configMap");
        for (i, item) in c.items.iter().enumerate() {
            errs.also(validate_key_to_path(item).via_field_index("items", i));
        }
    }
    if let Some(p) = &v.projected {
        specified.push("projected");
        for (i, src) in p.sources.iter().enumerate() {
            errs.also(validate_projection(src).via_field_index("projected", i));
        }
    }
    if let Some(ed) = &v.empty_dir {
        specified.push("emptyDir");
        if !ed.medium.is_empty() && ed.medium != "Memory" {
            errs.also(FieldErrors::invalid_value(
                &ed.medium,
                "emptyDir.medium",
                "",
            ));
        }
        if let Some(q) = &ed.size_limit
            && q.as_str().starts_with('-')
        {
            errs.also(FieldErrors::invalid_value(
                q.as_str(),
                "emptyDir.sizeLimit",
                "",
            ));
        }
    }
    for (set, name) in [
        (v.persistent_volume_claim.is_some(), "persistentVolumeClaim"),
        (v.host_path.is_some(), "hostPath"),
        (v.csi.is_some(), "csi"),
        (v.ephemeral.is_some(), "ephemeral"),
        (v.image.is_some(), "image"),
    ] {
        if set {
            specified.push(name);
        }
    }
    if specified.is_empty() {
        let mut paths = vec!["secret", "configMap", "projected"];
        for (enabled, name) in [
            (f.pod_spec_volumes_empty_dir, "emptyDir"),
            (f.pod_spec_persistent_volume_claim, "persistentVolumeClaim"),
            (f.pod_spec_volumes_host_path, "hostPath"),
            (f.pod_spec_volumes_csi, "csi"),
            (f.pod_spec_volumes_ephemeral, "ephemeral"),
            (f.pod_spec_volumes_image, "image"),
        ] {
            if enabled {
                paths.push(name);
            }
        }
        errs.also(FieldErrors::missing_one_of(&paths));
    } else if specified.len() > 1 {
        errs.also(FieldErrors::multiple_one_of(&specified));
    }
    errs
}

fn validate_key_to_path(k: &KeyToPath) -> FieldErrors {
    let mut errs = FieldErrors::new();
    if k.key.is_empty() {
        errs.also(FieldErrors::missing(&["key"]));
    }
    if k.path.is_empty() {
        errs.also(FieldErrors::missing(&["path"]));
    }
    errs
}

fn validate_projection(p: &VolumeProjection) -> FieldErrors {
    let mut errs = FieldErrors::new();
    if p.cluster_trust_bundle.is_some() {
        errs.also(FieldErrors::disallowed(&["clusterTrustBundle"]));
    }
    let mut specified = Vec::new();
    for (src, name) in [(&p.secret, "secret"), (&p.config_map, "configMap")] {
        if let Some(s) = src {
            specified.push(name);
            let mut serrs = FieldErrors::new();
            if s.name.is_empty() {
                serrs.also(FieldErrors::missing(&["name"]));
            }
            for (i, item) in s.items.iter().enumerate() {
                serrs.also(validate_key_to_path(item).via_field_index("items", i));
            }
            errs.also(serrs.via_field(name));
        }
    }
    if let Some(t) = &p.service_account_token {
        specified.push("serviceAccountToken");
        if t.path.is_empty() {
            errs.also(FieldErrors::missing(&["path"]).via_field("serviceAccountToken"));
        }
    }
    if let Some(d) = &p.downward_api {
        specified.push("downwardAPI");
        let items = d
            .get("items")
            .and_then(|i| i.as_array())
            .cloned()
            .unwrap_or_default();
        for (i, item) in items.iter().enumerate() {
            let mut ierrs = FieldErrors::new();
            let has = |k: &str| item.get(k).is_some_and(|v| !v.is_null());
            match (has("fieldRef"), has("resourceFieldRef")) {
                (false, false) => {
                    ierrs.also(FieldErrors::missing_one_of(&[
                        "fieldRef",
                        "resourceFieldRef",
                    ]));
                }
                (true, true) => {
                    ierrs.also(FieldErrors::generic(
                        Reason::FieldValueInvalid,
                        "Within a single item, cannot set both",
                        &["resourceFieldRef", "fieldRef"],
                    ));
                }
                _ => {}
            }
            if item
                .get("path")
                .and_then(|p| p.as_str())
                .unwrap_or("")
                .is_empty()
            {
                ierrs.also(FieldErrors::missing(&["path"]));
            }
            errs.also(ierrs.via_field_index("items", i).via_field("downwardAPI"));
        }
    }
    if specified.is_empty() {
        errs.also(FieldErrors::missing_one_of(&[
            "secret",
            "configMap",
            "serviceAccountToken",
            "downwardAPI",
        ]));
    } else if specified.len() > 1 {
        errs.also(FieldErrors::multiple_one_of(&specified));
    }
    errs
}

/// A pragmatic version of go-containerregistry's `name.ParseReference` (weak validation):
/// `[registry/]repository[:tag][@algorithm:hex]`.
pub(crate) fn check_image_reference(image: &str) -> Result<(), String> {
    let fail = || Err(format!("could not parse reference: {image}"));
    let (rest, digest) = match image.split_once('@') {
        Some((r, d)) => (r, Some(d)),
        None => (image, None),
    };
    if let Some(d) = digest {
        let Some((algo, hex)) = d.split_once(':') else {
            return fail();
        };
        let algo_ok = !algo.is_empty()
            && algo
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+._-".contains(&b));
        let hex_ok = hex.len() >= 32 && hex.bytes().all(|b| b.is_ascii_hexdigit());
        if !algo_ok || !hex_ok {
            return fail();
        }
    }
    // A tag follows the last ':' after the last '/'.
    let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match rest[last_slash..].rfind(':') {
        Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
        None => (rest, None),
    };
    if let Some(t) = tag {
        let ok = !t.is_empty()
            && t.len() <= 128
            && t.bytes()
                .next()
                .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
        if !ok {
            return fail();
        }
    }
    let mut parts: Vec<&str> = name.split('/').collect();
    if parts.len() > 1 {
        let first = parts[0];
        if first.contains('.') || first.contains(':') || first == "localhost" {
            let host_ok = !first.is_empty()
                && first
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b));
            if !host_ok {
                return fail();
            }
            parts.remove(0);
        }
    }
    let repo_ok = !parts.is_empty()
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-.".contains(&b))
        });
    if !repo_ok {
        return fail();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_references() {
        for ok in [
            "ghcr.io/knative/helloworld-go:latest",
            "gcr.io/knative-samples/helloworld-go",
            "nginx",
            "localhost:5000/app:v1",
            "127.0.0.1:5000/a/b",
            "docker.io/library/busybox@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ] {
            assert_eq!(check_image_reference(ok), Ok(()), "{ok}");
        }
        for bad in ["UPPER/case", "a:b:c", "foo@bar", "a//b", "x:", "repo:-tag"] {
            assert!(check_image_reference(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn clean_paths() {
        for (p, want) in [
            ("/", "/"),
            ("/dev/", "/dev"),
            ("/dev/./log", "/dev/log"),
            ("/a/../dev", "/dev"),
            ("//x//y/", "/x/y"),
            ("a/..", "."),
            ("../a", "../a"),
        ] {
            assert_eq!(clean_path(p), want, "{p}");
        }
    }
}
