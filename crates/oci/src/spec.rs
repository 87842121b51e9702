//! The OCI runtime spec (runc's `config.json`) of a replica: a pure function of the image
//! config, the Kubernetes container and the replica's options.
//!
//! Merge rules are Kubernetes' (and the CRI's): `command` replaces the image's Entrypoint
//! *and* drops its Cmd; `args` replace Cmd; the environment is the image's, then the
//! container's, then wisp's own (`PORT`, `K_SERVICE`, ...), a later value replacing an earlier
//! one in place; `workingDir` replaces WorkingDir; the user is `runAsUser`/`runAsGroup`, else
//! the image's `User`; `runAsNonRoot` refuses uid 0 and names it cannot check. Capabilities
//! start from Docker's default set, then `add`/`drop` apply as containerd applies them
//! (`ALL` first, then single names). Isolation: pid, mount, ipc and uts namespaces, a network
//! namespace on request; cgroup limits from `resources.limits` (and CPU shares from
//! requests).
//!
//! `$(VAR)` references in command, args and env must be expanded by the caller
//! (`wisp-runtime`'s `expand`) before: Kubernetes expands them from the container's variables
//! only, never from the image's, so expansion does not need the image.
//!
//! Nothing here does I/O except [`UserDb::read`], which the caller runs on the image's root
//! file system when the image names its user.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use oci_spec::runtime::{
    Capability, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxCpuBuilder, LinuxDeviceCgroupBuilder,
    LinuxMemoryBuilder, LinuxNamespaceBuilder, LinuxNamespaceType, LinuxPidsBuilder,
    LinuxResourcesBuilder, Mount, MountBuilder, ProcessBuilder, RootBuilder, Spec, SpecBuilder,
    UserBuilder,
};
use wisp_api::core::{Container, PodSecurityContext};

use crate::manifest::ContainerConfig;
use crate::quantity::{self, QuantityError};

/// Docker's default `PATH`, set when neither image nor container has one.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The capabilities a container has by default (Docker's and containerd's set).
pub const DEFAULT_CAPABILITIES: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "FSETID",
    "FOWNER",
    "MKNOD",
    "NET_RAW",
    "SETGID",
    "SETUID",
    "SETFCAP",
    "SETPCAP",
    "NET_BIND_SERVICE",
    "SYS_CHROOT",
    "KILL",
    "AUDIT_WRITE",
];

/// Every capability `add: [ALL]` grants.
const ALL_CAPABILITIES: &[&str] = &[
    "AUDIT_CONTROL",
    "AUDIT_READ",
    "AUDIT_WRITE",
    "BLOCK_SUSPEND",
    "BPF",
    "CHECKPOINT_RESTORE",
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "IPC_LOCK",
    "IPC_OWNER",
    "KILL",
    "LEASE",
    "LINUX_IMMUTABLE",
    "MAC_ADMIN",
    "MAC_OVERRIDE",
    "MKNOD",
    "NET_ADMIN",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_RAW",
    "PERFMON",
    "SETGID",
    "SETFCAP",
    "SETPCAP",
    "SETUID",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_CHROOT",
    "SYS_MODULE",
    "SYS_NICE",
    "SYS_PACCT",
    "SYS_PTRACE",
    "SYS_RAWIO",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "SYSLOG",
    "WAKE_ALARM",
];

const MASKED_PATHS: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// CFS period in microseconds, and the smallest quota Kubernetes sets.
const CPU_PERIOD: u64 = 100_000;
const MIN_CPU_QUOTA: i64 = 1_000;

/// Why no spec could be made; field paths are relative to the container.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error(
        "nothing to run: the container has no command or args and the image has no Entrypoint or Cmd"
    )]
    NoCommand,
    #[error(
        "container has runAsNonRoot and image will run as root; set securityContext.runAsUser to a non-zero uid or use an image with a non-root USER"
    )]
    RunsAsRoot,
    #[error(
        "container has runAsNonRoot and image has non-numeric user ({0}), cannot verify user is non-root; set securityContext.runAsUser"
    )]
    NonNumericUser(String),
    #[error(
        "the image's user {0:?} is not in its /etc/passwd (or /etc/group); set securityContext.runAsUser"
    )]
    UnknownUser(String),
    #[error("{field}: {source}")]
    Quantity {
        field: String,
        #[source]
        source: QuantityError,
    },
    #[error("{field}: unknown capability {name:?}")]
    UnknownCapability { field: String, name: String },
    #[error("{field}: volume {name:?} is not an emptyDir volume of this revision")]
    UnknownVolume { field: String, name: String },
    #[error("{field}: {path:?} {problem}")]
    BadPath {
        field: String,
        path: String,
        problem: &'static str,
    },
    #[error("securityContext.privileged: privileged containers are not supported")]
    Privileged,
    #[error("cannot build the runtime spec: {0}")]
    Build(String),
}

fn build_err(e: impl std::fmt::Display) -> SpecError {
    SpecError::Build(e.to_string())
}

/// The network namespace of a replica.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Network {
    /// The host's (the replica listens on a host port, as process replicas do).
    #[default]
    Host,
    /// A new, empty namespace (only loopback) that runc creates.
    New,
    /// An existing namespace, e.g. one set up with a veth pair: `/var/run/netns/x`.
    Join(PathBuf),
}

/// Where an emptyDir volume's files live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VolumeSource {
    /// A directory of the replica's, bind-mounted.
    HostDir(PathBuf),
    /// A tmpfs (`medium: Memory`), with an optional size in bytes.
    Tmpfs { size: Option<i64> },
}

/// `/etc/passwd` and `/etc/group` of an image, to resolve a named `USER`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserDb {
    pub passwd: String,
    pub group: String,
}

impl UserDb {
    /// Reads them from a root file system (missing files are empty).
    pub fn read(rootfs: &Path) -> UserDb {
        let read = |p: &str| std::fs::read_to_string(rootfs.join(p)).unwrap_or_default();
        UserDb {
            passwd: read("etc/passwd"),
            group: read("etc/group"),
        }
    }

    /// (uid, primary gid) of a user given by name.
    fn user(&self, name: &str) -> Option<(u32, u32)> {
        self.passwd.lines().find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() >= 4 && f[0] == name)
                .then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))?
        })
    }

    fn primary_gid(&self, uid: u32) -> Option<u32> {
        self.passwd.lines().find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() >= 4 && f[2].parse() == Ok(uid)).then(|| f[3].parse().ok())?
        })
    }

    fn user_name(&self, uid: u32) -> Option<&str> {
        self.passwd.lines().find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() >= 3 && f[2].parse() == Ok(uid)).then_some(f[0])
        })
    }

    fn group(&self, name: &str) -> Option<u32> {
        self.group.lines().find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() >= 3 && f[0] == name).then(|| f[2].parse().ok())?
        })
    }

    /// Groups that list `user` as a member.
    fn member_of(&self, user: &str) -> Vec<u32> {
        self.group
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.len() >= 4 && f[3].split(',').any(|m| m == user)).then(|| f[2].parse().ok())?
            })
            .collect()
    }
}

/// Everything about a replica that is not in the image or the container.
#[derive(Debug, Clone, Default)]
pub struct SpecOptions {
    /// The root file system (`root.path`).
    pub rootfs: PathBuf,
    /// The rootfs is shared by replicas (see `Rootfs::shared_read_only`): make it read-only
    /// and give `/tmp` a tmpfs.
    pub rootfs_shared_read_only: bool,
    pub hostname: String,
    /// `linux.cgroupsPath`, e.g. `/wisp/default/hello-00001/r1`.
    pub cgroups_path: Option<String>,
    pub network: Network,
    /// emptyDir volumes by name.
    pub volumes: BTreeMap<String, VolumeSource>,
    /// Host files bind-mounted read-only at `/etc/resolv.conf` and `/etc/hosts`.
    pub resolv_conf: Option<PathBuf>,
    pub hosts: Option<PathBuf>,
    /// The revision's pod-level security context; the container's own wins field by field.
    pub pod_security_context: Option<PodSecurityContext>,
    /// The image's users and groups, needed when its `User` is a name.
    pub user_db: Option<UserDb>,
    pub pids_limit: Option<i64>,
}

/// Builds the runtime spec of one replica.
pub fn build(
    image: &ContainerConfig,
    container: &Container,
    extra_env: &[(String, String)],
    opts: &SpecOptions,
) -> Result<Spec, SpecError> {
    let sc = container.security_context.clone().unwrap_or_default();
    let pod = opts.pod_security_context.clone().unwrap_or_default();
    if sc.privileged == Some(true) {
        return Err(SpecError::Privileged);
    }

    let args = command_line(image, container)?;
    let env = environment(image, container, extra_env, &opts.hostname);
    let cwd = working_dir(image, container)?;
    let user = resolve_user(image, container, &pod, opts.user_db.as_ref())?;
    let caps = capabilities(container)?;

    let cap_set: oci_spec::runtime::Capabilities = caps.iter().copied().collect();
    let capabilities = LinuxCapabilitiesBuilder::default()
        .bounding(cap_set.clone())
        .effective(cap_set.clone())
        .permitted(cap_set)
        .inheritable(oci_spec::runtime::Capabilities::new())
        .ambient(oci_spec::runtime::Capabilities::new())
        .build()
        .map_err(build_err)?;
    let no_new_privileges = sc.allow_privilege_escalation == Some(false);
    let mut user_builder = UserBuilder::default().uid(user.uid).gid(user.gid);
    if !user.additional_gids.is_empty() {
        user_builder = user_builder.additional_gids(user.additional_gids.clone());
    }
    let process = ProcessBuilder::default()
        .terminal(false)
        .user(user_builder.build().map_err(build_err)?)
        .args(args)
        .env(env)
        .cwd(cwd)
        .capabilities(capabilities)
        .no_new_privileges(no_new_privileges)
        .build()
        .map_err(build_err)?;

    let read_only = sc.read_only_root_filesystem == Some(true) || opts.rootfs_shared_read_only;
    let root = RootBuilder::default()
        .path(opts.rootfs.clone())
        .readonly(read_only)
        .build()
        .map_err(build_err)?;

    let mut namespaces = Vec::new();
    for typ in [
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Mount,
    ] {
        namespaces.push(
            LinuxNamespaceBuilder::default()
                .typ(typ)
                .build()
                .map_err(build_err)?,
        );
    }
    match &opts.network {
        Network::Host => {}
        Network::New => namespaces.push(
            LinuxNamespaceBuilder::default()
                .typ(LinuxNamespaceType::Network)
                .build()
                .map_err(build_err)?,
        ),
        Network::Join(path) => namespaces.push(
            LinuxNamespaceBuilder::default()
                .typ(LinuxNamespaceType::Network)
                .path(path.clone())
                .build()
                .map_err(build_err)?,
        ),
    }

    let mut linux = LinuxBuilder::default()
        .namespaces(namespaces)
        .resources(resources(container, opts.pids_limit)?)
        .masked_paths(
            MASKED_PATHS
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>(),
        )
        .readonly_paths(
            READONLY_PATHS
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>(),
        );
    if let Some(cg) = &opts.cgroups_path {
        linux = linux.cgroups_path(PathBuf::from(cg));
    }

    SpecBuilder::default()
        .version("1.0.2")
        .hostname(opts.hostname.clone())
        .root(root)
        .process(process)
        .mounts(mounts(container, opts)?)
        .linux(linux.build().map_err(build_err)?)
        .build()
        .map_err(build_err)
}

/// `command` replaces Entrypoint and drops Cmd; `args` replace Cmd.
pub fn command_line(
    image: &ContainerConfig,
    container: &Container,
) -> Result<Vec<String>, SpecError> {
    let mut argv: Vec<String> = if !container.command.is_empty() {
        container.command.clone()
    } else {
        image.entrypoint.clone().unwrap_or_default()
    };
    if !container.args.is_empty() {
        argv.extend(container.args.iter().cloned());
    } else if container.command.is_empty() {
        argv.extend(image.cmd.clone().unwrap_or_default());
    }
    if argv.is_empty() {
        return Err(SpecError::NoCommand);
    }
    Ok(argv)
}

/// `HOSTNAME`, the image's env, the container's, then `extra`; a later value replaces an
/// earlier one in place; `PATH` defaulted. Entries with `valueFrom` are skipped: their values
/// come resolved in `extra`.
pub fn environment(
    image: &ContainerConfig,
    container: &Container,
    extra: &[(String, String)],
    hostname: &str,
) -> Vec<String> {
    let mut vars: Vec<(String, String)> = Vec::new();
    let mut set = |k: &str, v: &str| match vars.iter_mut().find(|(n, _)| n == k) {
        Some(slot) => slot.1 = v.to_string(),
        None => vars.push((k.to_string(), v.to_string())),
    };
    if !hostname.is_empty() {
        set("HOSTNAME", hostname);
    }
    for e in image.env.iter().flatten() {
        let (k, v) = e.split_once('=').unwrap_or((e.as_str(), ""));
        set(k, v);
    }
    for e in &container.env {
        if e.value_from.is_none() {
            set(&e.name, &e.value);
        }
    }
    for (k, v) in extra {
        set(k, v);
    }
    if !vars.iter().any(|(k, _)| k == "PATH") {
        vars.push(("PATH".to_string(), DEFAULT_PATH.to_string()));
    }
    vars.into_iter().map(|(k, v)| format!("{k}={v}")).collect()
}

fn working_dir(image: &ContainerConfig, container: &Container) -> Result<PathBuf, SpecError> {
    let (field, dir) = if !container.working_dir.is_empty() {
        ("workingDir", container.working_dir.as_str())
    } else {
        (
            "image WorkingDir",
            image.working_dir.as_deref().unwrap_or(""),
        )
    };
    if dir.is_empty() {
        return Ok(PathBuf::from("/"));
    }
    if !dir.starts_with('/') {
        return Err(SpecError::BadPath {
            field: field.to_string(),
            path: dir.to_string(),
            problem: "must be an absolute path",
        });
    }
    Ok(PathBuf::from(dir))
}

/// The process's identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedUser {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
}

/// `runAsUser`/`runAsGroup` (container, then pod), else the image's `User`
/// (`uid`, `uid:gid`, `name`, `name:group`); `runAsNonRoot` checked; `fsGroup` and
/// `supplementalGroups` added.
pub fn resolve_user(
    image: &ContainerConfig,
    container: &Container,
    pod: &PodSecurityContext,
    db: Option<&UserDb>,
) -> Result<ResolvedUser, SpecError> {
    let sc = container.security_context.clone().unwrap_or_default();
    let run_as_user = sc.run_as_user.or(pod.run_as_user);
    let run_as_group = sc.run_as_group.or(pod.run_as_group);
    let non_root = sc.run_as_non_root.or(pod.run_as_non_root) == Some(true);
    let image_user = image.user.clone().unwrap_or_default();
    let (img_user, img_group) = match image_user.split_once(':') {
        Some((u, g)) => (u.to_string(), Some(g.to_string())),
        None => (image_user.clone(), None),
    };
    let to_id = |v: i64, field: &str| {
        u32::try_from(v).map_err(|_| SpecError::BadPath {
            field: field.to_string(),
            path: v.to_string(),
            problem: "is not a valid id",
        })
    };

    let mut user_name: Option<String> = None;
    let (uid, passwd_gid) = match run_as_user {
        Some(u) => {
            let uid = to_id(u, "securityContext.runAsUser")?;
            (uid, db.and_then(|d| d.primary_gid(uid)))
        }
        None if img_user.is_empty() => (0, Some(0)),
        None => match img_user.parse::<u32>() {
            Ok(uid) => (uid, db.and_then(|d| d.primary_gid(uid))),
            Err(_) => {
                if non_root {
                    return Err(SpecError::NonNumericUser(img_user));
                }
                let (uid, gid) = db
                    .and_then(|d| d.user(&img_user))
                    .ok_or_else(|| SpecError::UnknownUser(img_user.clone()))?;
                user_name = Some(img_user.clone());
                (uid, Some(gid))
            }
        },
    };
    if non_root && uid == 0 {
        return Err(SpecError::RunsAsRoot);
    }
    let gid = match run_as_group {
        Some(g) => to_id(g, "securityContext.runAsGroup")?,
        // The image's group goes with the image's user only.
        None => match (&img_group, run_as_user) {
            (Some(g), None) => match g.parse::<u32>() {
                Ok(gid) => gid,
                Err(_) => db
                    .and_then(|d| d.group(g))
                    .ok_or_else(|| SpecError::UnknownUser(image_user.clone()))?,
            },
            _ => passwd_gid.unwrap_or(0),
        },
    };
    let mut additional: Vec<u32> = Vec::new();
    if let Some(d) = db {
        let name = user_name.or_else(|| d.user_name(uid).map(str::to_string));
        if let Some(name) = name {
            additional.extend(d.member_of(&name));
        }
    }
    if let Some(fs_group) = pod.fs_group {
        additional.push(to_id(fs_group, "securityContext.fsGroup")?);
    }
    for g in &pod.supplemental_groups {
        additional.push(to_id(*g, "securityContext.supplementalGroups")?);
    }
    additional.sort_unstable();
    additional.dedup();
    additional.retain(|g| *g != gid);
    Ok(ResolvedUser {
        uid,
        gid,
        additional_gids: additional,
    })
}

fn parse_capability(field: &str, name: &str) -> Result<Capability, SpecError> {
    let clean = name.trim().to_uppercase();
    let clean = clean.strip_prefix("CAP_").unwrap_or(&clean);
    clean
        .parse::<Capability>()
        .map_err(|_| SpecError::UnknownCapability {
            field: field.to_string(),
            name: name.to_string(),
        })
}

/// Docker's default set with `add`/`drop` applied as containerd does: `ALL` in add grants
/// every capability and `ALL` in drop removes every one, both before the single names apply,
/// so `add: [CHOWN], drop: [ALL]` leaves only CHOWN.
pub fn capabilities(container: &Container) -> Result<Vec<Capability>, SpecError> {
    let caps = container
        .security_context
        .as_ref()
        .and_then(|s| s.capabilities.clone())
        .unwrap_or_default();
    let add = caps.add.unwrap_or_default();
    let drop = caps.drop.unwrap_or_default();
    let is_all = |s: &String| s.trim().eq_ignore_ascii_case("ALL");
    let mut set: Vec<Capability> = Vec::new();
    let insert = |set: &mut Vec<Capability>, c: Capability| {
        if !set.contains(&c) {
            set.push(c);
        }
    };
    let base: &[&str] = if add.iter().any(is_all) {
        ALL_CAPABILITIES
    } else {
        DEFAULT_CAPABILITIES
    };
    if !drop.iter().any(is_all) || add.iter().any(is_all) {
        for c in base {
            insert(&mut set, parse_capability("capabilities", c)?);
        }
    }
    if drop.iter().any(is_all) && add.iter().any(is_all) {
        set.clear();
    }
    for (i, a) in add.iter().enumerate().filter(|(_, a)| !is_all(a)) {
        insert(
            &mut set,
            parse_capability(&format!("securityContext.capabilities.add[{i}]"), a)?,
        );
    }
    for (i, d) in drop.iter().enumerate().filter(|(_, d)| !is_all(d)) {
        let c = parse_capability(&format!("securityContext.capabilities.drop[{i}]"), d)?;
        set.retain(|x| *x != c);
    }
    set.sort_by_key(|c| c.to_string());
    Ok(set)
}

fn resources(
    container: &Container,
    pids_limit: Option<i64>,
) -> Result<oci_spec::runtime::LinuxResources, SpecError> {
    let limits = &container.resources.limits;
    let requests = &container.resources.requests;
    let q = |map: &BTreeMap<String, wisp_api::core::Quantity>,
             kind: &str,
             name: &str,
             milli: bool|
     -> Result<Option<i64>, SpecError> {
        let Some(v) = map.get(name) else {
            return Ok(None);
        };
        let r = if milli {
            quantity::milli_value(v.as_str())
        } else {
            quantity::value(v.as_str())
        };
        r.map(Some).map_err(|source| SpecError::Quantity {
            field: format!("resources.{kind}.{name}"),
            source,
        })
    };
    let deny_all = LinuxDeviceCgroupBuilder::default()
        .allow(false)
        .access("rwm")
        .build()
        .map_err(build_err)?;
    let mut res = LinuxResourcesBuilder::default().devices(vec![deny_all]);
    if let Some(bytes) = q(limits, "limits", "memory", false)? {
        // No swap beyond the limit, as the kubelet sets it.
        let mem = LinuxMemoryBuilder::default()
            .limit(bytes)
            .swap(bytes)
            .build()
            .map_err(build_err)?;
        res = res.memory(mem);
    }
    let cpu_limit = q(limits, "limits", "cpu", true)?;
    let cpu_request = q(requests, "requests", "cpu", true)?.or(cpu_limit);
    if cpu_limit.is_some() || cpu_request.is_some() {
        let mut cpu = LinuxCpuBuilder::default();
        if let Some(milli) = cpu_limit {
            let quota = (milli * CPU_PERIOD as i64 / 1000).max(MIN_CPU_QUOTA);
            cpu = cpu.quota(quota).period(CPU_PERIOD);
        }
        if let Some(milli) = cpu_request {
            // The kubelet's MilliCPUToShares.
            cpu = cpu.shares(((milli * 1024) / 1000).max(2) as u64);
        }
        res = res.cpu(cpu.build().map_err(build_err)?);
    }
    if let Some(limit) = pids_limit {
        res = res.pids(
            LinuxPidsBuilder::default()
                .limit(limit)
                .build()
                .map_err(build_err)?,
        );
    }
    res.build().map_err(build_err)
}

fn mount(destination: &str, typ: &str, source: &str, options: &[&str]) -> Result<Mount, SpecError> {
    MountBuilder::default()
        .destination(destination)
        .typ(typ)
        .source(source)
        .options(options.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .build()
        .map_err(build_err)
}

fn clean_absolute(field: &str, path: &str) -> Result<PathBuf, SpecError> {
    let bad = |problem| SpecError::BadPath {
        field: field.to_string(),
        path: path.to_string(),
        problem,
    };
    if !path.starts_with('/') {
        return Err(bad("must be an absolute path"));
    }
    if Path::new(path)
        .components()
        .any(|c| c == Component::ParentDir)
    {
        return Err(bad("must not contain '..'"));
    }
    Ok(PathBuf::from(path))
}

fn mounts(container: &Container, opts: &SpecOptions) -> Result<Vec<Mount>, SpecError> {
    let mut out = vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"])?,
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        )?,
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        )?,
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        )?,
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        )?,
    ];
    // sysfs can be mounted only in a network namespace of the container's own; with the
    // host's, a read-only bind of the host's /sys stands in (as rootless runc does).
    if opts.network == Network::Host {
        out.push(mount(
            "/sys",
            "none",
            "/sys",
            &["rbind", "nosuid", "noexec", "nodev", "ro"],
        )?);
    } else {
        out.push(mount(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", "ro"],
        )?);
        out.push(mount(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &["nosuid", "noexec", "nodev", "relatime", "ro"],
        )?);
    }
    for (dest, src) in [
        ("/etc/resolv.conf", &opts.resolv_conf),
        ("/etc/hosts", &opts.hosts),
    ] {
        if let Some(src) = src {
            out.push(mount(
                dest,
                "bind",
                &src.to_string_lossy(),
                &["rbind", "ro", "nosuid", "nodev"],
            )?);
        }
    }
    let mut tmp_covered = false;
    for (i, vm) in container.volume_mounts.iter().enumerate() {
        let field = format!("volumeMounts[{i}]");
        let dest = clean_absolute(&format!("{field}.mountPath"), &vm.mount_path)?;
        if dest == Path::new("/tmp") {
            tmp_covered = true;
        }
        let source = opts
            .volumes
            .get(&vm.name)
            .ok_or_else(|| SpecError::UnknownVolume {
                field: format!("{field}.name"),
                name: vm.name.clone(),
            })?;
        let ro = if vm.read_only { "ro" } else { "rw" };
        let dest_s = dest.to_string_lossy().into_owned();
        match source {
            VolumeSource::HostDir(dir) => {
                let mut src = dir.clone();
                if !vm.sub_path.is_empty() {
                    let sub = Path::new(&vm.sub_path);
                    if sub.is_absolute() || sub.components().any(|c| c == Component::ParentDir) {
                        return Err(SpecError::BadPath {
                            field: format!("{field}.subPath"),
                            path: vm.sub_path.clone(),
                            problem: "must be a relative path without '..'",
                        });
                    }
                    src = src.join(sub);
                }
                out.push(mount(
                    &dest_s,
                    "bind",
                    &src.to_string_lossy(),
                    &["rbind", ro, "nosuid", "nodev"],
                )?);
            }
            VolumeSource::Tmpfs { size } => {
                let size_opt = size.map(|s| format!("size={s}"));
                let mut o = vec!["nosuid", "nodev", ro, "mode=1777"];
                if let Some(s) = &size_opt {
                    o.push(s);
                }
                out.push(mount(&dest_s, "tmpfs", "tmpfs", &o)?);
            }
        }
    }
    if opts.rootfs_shared_read_only && !tmp_covered {
        out.push(mount(
            "/tmp",
            "tmpfs",
            "tmpfs",
            &["nosuid", "nodev", "mode=1777"],
        )?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use wisp_api::core::{
        Capabilities, EnvVar, EnvVarSource, Quantity, SecurityContext, VolumeMount,
    };

    fn image(entrypoint: &[&str], cmd: &[&str]) -> ContainerConfig {
        let v = |s: &[&str]| (!s.is_empty()).then(|| s.iter().map(|x| x.to_string()).collect());
        ContainerConfig {
            entrypoint: v(entrypoint),
            cmd: v(cmd),
            ..Default::default()
        }
    }

    fn strings(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn command_merge_table() {
        // (image entrypoint, image cmd, container command, container args, expected)
        type Row<'a> = (
            &'a [&'a str],
            &'a [&'a str],
            &'a [&'a str],
            &'a [&'a str],
            Option<&'a [&'a str]>,
        );
        let table: &[Row] = &[
            (&["/ep"], &["c1"], &[], &[], Some(&["/ep", "c1"])),
            (&["/ep"], &["c1"], &["/cmd"], &[], Some(&["/cmd"])),
            (&["/ep"], &["c1"], &[], &["a1"], Some(&["/ep", "a1"])),
            (
                &["/ep"],
                &["c1"],
                &["/cmd"],
                &["a1", "a2"],
                Some(&["/cmd", "a1", "a2"]),
            ),
            (
                &[],
                &["/bin/sh", "-c", "x"],
                &[],
                &[],
                Some(&["/bin/sh", "-c", "x"]),
            ),
            (&[], &["c1"], &[], &["/a"], Some(&["/a"])),
            (&[], &[], &["/cmd"], &[], Some(&["/cmd"])),
            (&[], &[], &[], &[], None),
        ];
        for (ep, cmd, command, args, want) in table {
            let c = Container {
                command: strings(command),
                args: strings(args),
                ..Default::default()
            };
            let got = command_line(&image(ep, cmd), &c).ok();
            assert_eq!(
                got,
                want.map(strings),
                "{ep:?} {cmd:?} {command:?} {args:?}"
            );
        }
    }

    #[test]
    fn env_merge() {
        let img = ContainerConfig {
            env: Some(strings(&["PATH=/img/bin", "A=image", "B=image", "NOVALUE"])),
            ..Default::default()
        };
        let c = Container {
            env: vec![
                EnvVar {
                    name: "B".into(),
                    value: "container".into(),
                    value_from: None,
                },
                EnvVar {
                    name: "C".into(),
                    value: "c".into(),
                    value_from: None,
                },
                EnvVar {
                    name: "SECRET".into(),
                    value: String::new(),
                    value_from: Some(EnvVarSource::default()),
                },
            ],
            ..Default::default()
        };
        let extra = vec![
            ("PORT".to_string(), "8080".to_string()),
            ("C".to_string(), "wisp".to_string()),
            ("SECRET".to_string(), "s3cr3t".to_string()),
        ];
        assert_eq!(
            environment(&img, &c, &extra, "rev-1"),
            strings(&[
                "HOSTNAME=rev-1",
                "PATH=/img/bin",
                "A=image",
                "B=container",
                "NOVALUE=",
                "C=wisp",
                "PORT=8080",
                "SECRET=s3cr3t"
            ])
        );
        let bare = environment(&ContainerConfig::default(), &Container::default(), &[], "");
        assert_eq!(bare, vec![format!("PATH={DEFAULT_PATH}")]);
    }

    fn sc(f: impl FnOnce(&mut SecurityContext)) -> Container {
        let mut s = SecurityContext::default();
        f(&mut s);
        Container {
            security_context: Some(s),
            ..Default::default()
        }
    }

    #[test]
    fn user_table() {
        let db = UserDb {
            passwd: "root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n".into(),
            group: "root:x:0:\napp:x:1001:\nextra:x:2000:app,other\nweb:x:3000:\n".into(),
        };
        let img = |u: &str| ContainerConfig {
            user: (!u.is_empty()).then(|| u.to_string()),
            ..Default::default()
        };
        let pod = PodSecurityContext::default();
        let ok = |i: &ContainerConfig, c: &Container, d: Option<&UserDb>| {
            let u = resolve_user(i, c, &pod, d).unwrap();
            (u.uid, u.gid, u.additional_gids)
        };
        let none = Container::default();
        assert_eq!(ok(&img(""), &none, None), (0, 0, vec![]));
        assert_eq!(ok(&img("1000"), &none, None), (1000, 0, vec![]));
        assert_eq!(ok(&img("1000"), &none, Some(&db)), (1000, 1001, vec![2000]));
        assert_eq!(ok(&img("1000:50"), &none, None), (1000, 50, vec![]));
        assert_eq!(ok(&img("app"), &none, Some(&db)), (1000, 1001, vec![2000]));
        assert_eq!(
            ok(&img("app:web"), &none, Some(&db)),
            (1000, 3000, vec![2000])
        );
        let run_as = sc(|s| s.run_as_user = Some(4242));
        assert_eq!(ok(&img("app"), &run_as, Some(&db)), (4242, 0, vec![]));
        let run_as_group = sc(|s| {
            s.run_as_user = Some(5);
            s.run_as_group = Some(6)
        });
        assert_eq!(ok(&img("1000:50"), &run_as_group, None), (5, 6, vec![]));

        assert!(matches!(
            resolve_user(&img("app"), &none, &pod, None),
            Err(SpecError::UnknownUser(_))
        ));
        let non_root = sc(|s| s.run_as_non_root = Some(true));
        assert!(matches!(
            resolve_user(&img(""), &non_root, &pod, None),
            Err(SpecError::RunsAsRoot)
        ));
        assert!(matches!(
            resolve_user(&img("0"), &non_root, &pod, None),
            Err(SpecError::RunsAsRoot)
        ));
        let e = resolve_user(&img("app"), &non_root, &pod, Some(&db)).unwrap_err();
        assert!(e.to_string().contains("non-numeric user (app)"), "{e}");
        assert_eq!(ok(&img("1000"), &non_root, None), (1000, 0, vec![]));
        let both = sc(|s| {
            s.run_as_non_root = Some(true);
            s.run_as_user = Some(0)
        });
        assert!(matches!(
            resolve_user(&img("1000"), &both, &pod, None),
            Err(SpecError::RunsAsRoot)
        ));
        // Pod-level settings apply unless the container sets its own.
        let pod = PodSecurityContext {
            run_as_user: Some(7),
            run_as_non_root: Some(true),
            fs_group: Some(9),
            supplemental_groups: vec![10, 9],
            ..Default::default()
        };
        let u = resolve_user(&img(""), &none, &pod, None).unwrap();
        assert_eq!((u.uid, u.gid, u.additional_gids), (7, 0, vec![9, 10]));
        let c = sc(|s| s.run_as_user = Some(0));
        assert!(matches!(
            resolve_user(&img(""), &c, &pod, None),
            Err(SpecError::RunsAsRoot)
        ));
    }

    #[test]
    fn capability_table() {
        let caps = |add: &[&str], drop: &[&str]| {
            let c = sc(|s| {
                s.capabilities = Some(Capabilities {
                    add: Some(strings(add)),
                    drop: Some(strings(drop)),
                })
            });
            capabilities(&c).map(|v| v.iter().map(|c| c.to_string()).collect::<Vec<_>>())
        };
        let default = caps(&[], &[]).unwrap();
        assert_eq!(default.len(), DEFAULT_CAPABILITIES.len());
        assert!(default.contains(&"NET_BIND_SERVICE".to_string()));
        assert!(!default.contains(&"SYS_ADMIN".to_string()));
        assert_eq!(caps(&["CHOWN"], &["ALL"]).unwrap(), strings(&["CHOWN"]));
        assert_eq!(caps(&[], &["ALL"]).unwrap(), Vec::<String>::new());
        let all_but = caps(&["ALL"], &["CHOWN"]).unwrap();
        assert_eq!(all_but.len(), ALL_CAPABILITIES.len() - 1);
        assert!(!all_but.contains(&"CHOWN".to_string()));
        let plus = caps(&["NET_ADMIN", "CAP_SYS_TIME"], &["KILL", "net_raw"]).unwrap();
        assert!(plus.contains(&"NET_ADMIN".to_string()));
        assert!(plus.contains(&"SYS_TIME".to_string()));
        assert!(!plus.contains(&"KILL".to_string()));
        assert!(!plus.contains(&"NET_RAW".to_string()));
        let e = caps(&["FLY"], &[]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "securityContext.capabilities.add[0]: unknown capability \"FLY\""
        );
        for c in ALL_CAPABILITIES {
            parse_capability("x", c).unwrap();
        }
    }

    fn with_limits(limits: &[(&str, &str)], requests: &[(&str, &str)]) -> Container {
        let mut c = Container::default();
        for (k, v) in limits {
            c.resources
                .limits
                .insert(k.to_string(), Quantity(v.to_string()));
        }
        for (k, v) in requests {
            c.resources
                .requests
                .insert(k.to_string(), Quantity(v.to_string()));
        }
        c
    }

    #[test]
    fn resources_table() {
        let r = resources(
            &with_limits(&[("memory", "128Mi"), ("cpu", "500m")], &[]),
            Some(64),
        )
        .unwrap();
        let mem = r.memory().unwrap();
        assert_eq!(mem.limit(), Some(128 << 20));
        assert_eq!(mem.swap(), Some(128 << 20));
        let cpu = r.cpu().clone().unwrap();
        assert_eq!(cpu.quota(), Some(50_000));
        assert_eq!(cpu.period(), Some(100_000));
        assert_eq!(cpu.shares(), Some(512));
        assert_eq!(r.pids().unwrap().limit(), 64);

        let r = resources(&with_limits(&[("cpu", "1m")], &[("cpu", "1m")]), None).unwrap();
        let cpu = r.cpu().clone().unwrap();
        assert_eq!(cpu.quota(), Some(MIN_CPU_QUOTA));
        assert_eq!(cpu.shares(), Some(2));

        let r = resources(&with_limits(&[], &[("cpu", "2")]), None).unwrap();
        let cpu = r.cpu().clone().unwrap();
        assert_eq!((cpu.quota(), cpu.shares()), (None, Some(2048)));

        let r = resources(&Container::default(), None).unwrap();
        assert!(r.memory().is_none() && r.cpu().is_none());
        assert_eq!(r.devices().as_ref().map(|d| d.len()), Some(1));

        let e = resources(&with_limits(&[("memory", "lots")], &[]), None).unwrap_err();
        assert!(
            e.to_string().starts_with("resources.limits.memory: "),
            "{e}"
        );
    }

    fn base_opts() -> SpecOptions {
        SpecOptions {
            rootfs: PathBuf::from("/data/rootfs"),
            hostname: "hello-00001".into(),
            resolv_conf: Some(PathBuf::from("/etc/resolv.conf")),
            ..Default::default()
        }
    }

    #[test]
    fn whole_spec() {
        let img = ContainerConfig {
            entrypoint: Some(strings(&["/app"])),
            working_dir: Some("/srv".into()),
            user: Some("1000".into()),
            ..Default::default()
        };
        let mut c = sc(|s| {
            s.read_only_root_filesystem = Some(true);
            s.allow_privilege_escalation = Some(false);
        });
        c.volume_mounts = vec![
            VolumeMount {
                name: "cache".into(),
                mount_path: "/cache".into(),
                ..Default::default()
            },
            VolumeMount {
                name: "mem".into(),
                mount_path: "/tmp".into(),
                read_only: true,
                ..Default::default()
            },
        ];
        let mut opts = base_opts();
        opts.cgroups_path = Some("/wisp/default/hello/r1".into());
        opts.network = Network::New;
        opts.volumes.insert(
            "cache".into(),
            VolumeSource::HostDir("/data/r1/cache".into()),
        );
        opts.volumes.insert(
            "mem".into(),
            VolumeSource::Tmpfs {
                size: Some(1 << 20),
            },
        );
        let spec = build(&img, &c, &[("PORT".into(), "8080".into())], &opts).unwrap();
        let json = serde_json::to_value(&spec).unwrap();
        assert_eq!(json["process"]["terminal"], false);
        assert_eq!(json["process"]["args"], serde_json::json!(["/app"]));
        assert_eq!(json["process"]["cwd"], "/srv");
        assert_eq!(json["process"]["user"]["uid"], 1000);
        assert_eq!(json["process"]["noNewPrivileges"], true);
        assert_eq!(json["root"]["path"], "/data/rootfs");
        assert_eq!(json["root"]["readonly"], true);
        assert_eq!(json["hostname"], "hello-00001");
        assert_eq!(json["linux"]["cgroupsPath"], "/wisp/default/hello/r1");
        let ns: Vec<String> = json["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["type"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(ns, strings(&["pid", "ipc", "uts", "mount", "network"]));
        let mounts: Vec<(String, String)> = json["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["destination"].as_str().unwrap().to_string(),
                    m["type"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        for want in [
            ("/proc", "proc"),
            ("/dev", "tmpfs"),
            ("/dev/pts", "devpts"),
            ("/dev/shm", "tmpfs"),
            ("/sys", "sysfs"),
            ("/etc/resolv.conf", "bind"),
            ("/cache", "bind"),
            ("/tmp", "tmpfs"),
        ] {
            assert!(
                mounts.contains(&(want.0.to_string(), want.1.to_string())),
                "{want:?} missing in {mounts:?}"
            );
        }
        let tmp = json["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["destination"] == "/tmp")
            .unwrap();
        assert!(
            tmp["options"]
                .as_array()
                .unwrap()
                .contains(&serde_json::json!("size=1048576"))
        );
        assert!(
            tmp["options"]
                .as_array()
                .unwrap()
                .contains(&serde_json::json!("ro"))
        );
    }

    #[test]
    fn shared_rootfs_gets_readonly_root_and_tmp() {
        let img = image(&["/app"], &[]);
        let mut opts = base_opts();
        opts.rootfs_shared_read_only = true;
        let spec = build(&img, &Container::default(), &[], &opts).unwrap();
        let json = serde_json::to_value(&spec).unwrap();
        assert_eq!(json["root"]["readonly"], true);
        let mounts = json["mounts"].as_array().unwrap();
        assert!(
            mounts
                .iter()
                .any(|m| m["destination"] == "/tmp" && m["type"] == "tmpfs")
        );
        // Host network: /sys is a read-only bind, and there is no network namespace.
        assert!(
            mounts
                .iter()
                .any(|m| m["destination"] == "/sys" && m["type"] == "none")
        );
        let ns = json["linux"]["namespaces"].as_array().unwrap();
        assert!(!ns.iter().any(|n| n["type"] == "network"));
    }

    #[test]
    fn refusals_name_the_field() {
        let img = image(&["/app"], &[]);
        let mut c = Container::default();
        c.volume_mounts.push(VolumeMount {
            name: "nope".into(),
            mount_path: "/x".into(),
            ..Default::default()
        });
        let e = build(&img, &c, &[], &base_opts()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "volumeMounts[0].name: volume \"nope\" is not an emptyDir volume of this revision"
        );
        let mut opts = base_opts();
        opts.volumes
            .insert("v".into(), VolumeSource::HostDir("/d".into()));
        for (mount_path, sub_path, field) in [
            ("relative", "", "volumeMounts[0].mountPath"),
            ("/a/../b", "", "volumeMounts[0].mountPath"),
            ("/ok", "../up", "volumeMounts[0].subPath"),
        ] {
            let mut c = Container::default();
            c.volume_mounts.push(VolumeMount {
                name: "v".into(),
                mount_path: mount_path.into(),
                sub_path: sub_path.into(),
                ..Default::default()
            });
            let e = build(&img, &c, &[], &opts).unwrap_err();
            assert!(e.to_string().starts_with(field), "{e}");
        }
        let c = Container {
            working_dir: "rel".into(),
            ..Default::default()
        };
        assert!(
            build(&img, &c, &[], &base_opts())
                .unwrap_err()
                .to_string()
                .starts_with("workingDir")
        );
        let c = sc(|s| s.privileged = Some(true));
        assert!(matches!(
            build(&img, &c, &[], &base_opts()),
            Err(SpecError::Privileged)
        ));
        assert!(matches!(
            build(
                &ContainerConfig::default(),
                &Container::default(),
                &[],
                &base_opts()
            ),
            Err(SpecError::NoCommand)
        ));
    }
}
