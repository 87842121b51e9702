//! The cgroups of container replicas, read and written through cgroupfs directly.
//!
//! Each container gets two levels, as a Kubernetes pod does: a *pod* cgroup
//! `/{parent}/{container id}` that wisp owns, and the container's own `…/ctr` that runc creates
//! from `linux.cgroupsPath` and removes when the container ends. The pod level exists for what
//! must outlive the container: whether it was killed for its memory.
//!
//! OOM detection, by layout (`/sys/fs/cgroup` a `cgroup2` mount or not, as runc decides):
//! - **cgroup v2**: the memory limit stays in the runtime spec (on `ctr`); the pod's
//!   `memory.events` counts `oom_kill` hierarchically, so it still has the count after runc
//!   removed `ctr`. A run was OOM-killed when the count went up during it.
//! - **cgroup v1** (hybrid hosts included): an OOM kill is counted in the `memory.oom_control`
//!   of the *task's* memcg only (`ctr`, gone with the container) and never propagated. So the
//!   limit moves to the pod cgroup (the runtime spec gets none), and an eventfd registered on
//!   the pod's `memory.oom_control` through `cgroup.event_control` (what runc's `events` and
//!   containerd do) is signalled when the pod's memory runs out; after the run it is read
//!   without blocking: a non-zero count means an OOM.
//!
//! The sweep of orphans finds a container's processes through any of its cgroups
//! ([`Cgroups::procs`]) and removes the pod levels ([`Cgroups::remove_pod`]).

use std::fs;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

/// The cgroup mount whose layout runc follows.
const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// One cgroup file system mounted on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CgroupMount {
    pub mount_point: PathBuf,
    /// `cgroup2` (unified), else v1.
    pub unified: bool,
    /// The v1 controllers it carries (its super options, e.g. `rw,memory`).
    pub options: Vec<String>,
}

/// Parses `/proc/self/mountinfo` for cgroup file systems.
pub(crate) fn parse_mountinfo(text: &str) -> Vec<CgroupMount> {
    text.lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let mount_point = left.split(' ').nth(4)?;
            let mut right = right.split(' ');
            let fstype = right.next()?;
            let _source = right.next()?;
            let options = right.next().unwrap_or("");
            let unified = match fstype {
                "cgroup2" => true,
                "cgroup" => false,
                _ => return None,
            };
            Some(CgroupMount {
                mount_point: PathBuf::from(unescape(mount_point)),
                unified,
                options: options.split(',').map(str::to_string).collect(),
            })
        })
        .collect()
}

/// mountinfo escapes space, tab, newline and backslash as `\NNN` (octal).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b.get(i + 1..i + 4).filter(|d| {
            d.iter()
                .all(|c| (b'0'..=b'3').contains(&d[0]) && (b'0'..=b'7').contains(c))
        });
        if let (b'\\', Some(d)) = (b[i], octal) {
            out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The host's cgroup layout and the parent of wisp's cgroups.
#[derive(Debug, Clone)]
pub(crate) struct Cgroups {
    parent: String,
    /// Every cgroup mount (v1 hierarchies, a hybrid host's unified one, or the v2 root).
    mounts: Vec<PathBuf>,
    layout: Layout,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Layout {
    V2 { root: PathBuf },
    V1 { memory: Option<PathBuf> },
}

impl Cgroups {
    /// Reads this host's layout; `parent` is the name of wisp's cgroup (e.g. `wisp`).
    pub(crate) fn detect(parent: &str) -> Cgroups {
        let text = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        Cgroups::from_mounts(parent, parse_mountinfo(&text))
    }

    pub(crate) fn from_mounts(parent: &str, mounts: Vec<CgroupMount>) -> Cgroups {
        let root = Path::new(CGROUP_ROOT);
        let layout = if mounts.iter().any(|m| m.unified && m.mount_point == root) {
            Layout::V2 {
                root: root.to_path_buf(),
            }
        } else {
            Layout::V1 {
                memory: mounts
                    .iter()
                    .find(|m| !m.unified && m.options.iter().any(|o| o == "memory"))
                    .map(|m| m.mount_point.clone()),
            }
        };
        let mut points: Vec<PathBuf> = mounts.into_iter().map(|m| m.mount_point).collect();
        points.sort();
        points.dedup();
        Cgroups {
            parent: parent.trim_matches('/').to_string(),
            mounts: points,
            layout,
        }
    }

    /// Whether the host has the unified (v2) layout.
    pub(crate) fn is_v2(&self) -> bool {
        matches!(self.layout, Layout::V2 { .. })
    }

    /// Whether the memory limit goes on the pod cgroup (v1) instead of the runtime spec.
    pub(crate) fn memory_limit_on_pod(&self) -> bool {
        !self.is_v2()
    }

    fn pod_rel(&self, cid: &str) -> PathBuf {
        PathBuf::from(&self.parent).join(cid)
    }

    /// `linux.cgroupsPath` of the container.
    pub(crate) fn container_path(&self, cid: &str) -> String {
        format!("/{}/{cid}/ctr", self.parent)
    }

    /// The pod cgroup's directories, one per mount (those that exist or not).
    pub(crate) fn pod_dirs(&self, cid: &str) -> Vec<PathBuf> {
        let rel = self.pod_rel(cid);
        self.mounts.iter().map(|m| m.join(&rel)).collect()
    }

    /// Creates the pod cgroup of container `cid` for one run, with its memory limit (v1) and
    /// OOM watch. A pod cgroup left by an earlier run is removed first.
    pub(crate) fn create_pod(&self, cid: &str, memory_limit: Option<i64>) -> io::Result<Pod> {
        self.remove_pod(cid);
        match &self.layout {
            Layout::V2 { root } => {
                // runc creates the pod level (with the controllers enabled) on its way to `ctr`.
                let events = root.join(self.pod_rel(cid)).join("memory.events");
                let baseline = read_oom_kills(&events).unwrap_or(0);
                Ok(Pod {
                    oom: OomWatch::Events { events, baseline },
                })
            }
            Layout::V1 { memory: None } => {
                if memory_limit.is_some() {
                    return Err(io::Error::other(
                        "this host has no memory cgroup controller to enforce resources.limits.memory",
                    ));
                }
                Ok(Pod {
                    oom: OomWatch::None,
                })
            }
            Layout::V1 {
                memory: Some(memory),
            } => {
                let dir = memory.join(self.pod_rel(cid));
                fs::create_dir_all(&dir).map_err(|e| annotate(e, "cannot create", &dir))?;
                if let Some(limit) = memory_limit {
                    write(&dir.join("memory.limit_in_bytes"), &limit.to_string())?;
                    // No swap beyond the limit (as the kubelet sets it), when swap is accounted.
                    let memsw = dir.join("memory.memsw.limit_in_bytes");
                    if memsw.exists() {
                        write(&memsw, &limit.to_string())?;
                    }
                }
                let efd = rustix::event::eventfd(
                    0,
                    rustix::event::EventfdFlags::CLOEXEC | rustix::event::EventfdFlags::NONBLOCK,
                )?;
                let control_path = dir.join("memory.oom_control");
                let control = fs::File::open(&control_path)
                    .map_err(|e| annotate(e, "cannot open", &control_path))?;
                // The kernel keeps its own references: `control` may be closed after this.
                write(
                    &dir.join("cgroup.event_control"),
                    &format!("{} {}", efd.as_raw_fd(), control.as_raw_fd()),
                )?;
                Ok(Pod {
                    oom: OomWatch::EventFd(efd),
                })
            }
        }
    }

    /// Every process in container `cid`'s cgroups (pod and container level, any mount).
    pub(crate) fn procs(&self, cid: &str) -> Vec<u32> {
        let mut pids = Vec::new();
        for dir in self.pod_dirs(cid) {
            let mut stack = vec![dir];
            while let Some(d) = stack.pop() {
                let Ok(entries) = fs::read_dir(&d) else {
                    continue;
                };
                if let Ok(text) = fs::read_to_string(d.join("cgroup.procs")) {
                    pids.extend(text.lines().filter_map(|l| l.trim().parse::<u32>().ok()));
                }
                stack.extend(
                    entries
                        .flatten()
                        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                        .map(|e| e.path()),
                );
            }
        }
        pids.sort_unstable();
        pids.dedup();
        pids
    }

    /// Removes the pod cgroup of `cid` (and a container level runc left) from every mount.
    /// Returns whether nothing is left. A cgroup with processes cannot be removed.
    pub(crate) fn remove_pod(&self, cid: &str) -> bool {
        let mut clean = true;
        for dir in self.pod_dirs(cid) {
            for d in [dir.join("ctr"), dir] {
                match fs::remove_dir(&d) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => {
                        tracing::warn!(cgroup = %d.display(), error = %e, "cannot remove a replica's cgroup");
                        clean = false;
                    }
                }
            }
        }
        clean
    }
}

/// A run's pod cgroup: how to tell whether the run was OOM-killed.
#[derive(Debug)]
pub(crate) struct Pod {
    oom: OomWatch,
}

#[derive(Debug)]
enum OomWatch {
    /// No memory controller.
    None,
    /// v1: the eventfd registered on the pod's `memory.oom_control`.
    EventFd(OwnedFd),
    /// v2: the pod's `memory.events` and its `oom_kill` count before the run.
    Events { events: PathBuf, baseline: u64 },
}

impl Pod {
    /// Whether the memory of the run ran out (some process was OOM-killed). Call after the
    /// run ended and before its pod cgroup is removed.
    pub(crate) fn oom_killed(&self) -> bool {
        match &self.oom {
            OomWatch::None => false,
            OomWatch::EventFd(fd) => {
                let mut buf = [0u8; 8];
                matches!(rustix::io::read(fd, &mut buf), Ok(8) if u64::from_ne_bytes(buf) > 0)
            }
            OomWatch::Events { events, baseline } => {
                read_oom_kills(events).is_some_and(|n| n > *baseline)
            }
        }
    }
}

/// The `oom_kill` count of a v2 `memory.events` file.
fn read_oom_kills(path: &Path) -> Option<u64> {
    parse_oom_kills(&fs::read_to_string(path).ok()?)
}

pub(crate) fn parse_oom_kills(text: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == "oom_kill").then(|| v.trim().parse().ok())?
    })
}

fn write(path: &Path, value: &str) -> io::Result<()> {
    fs::write(path, value).map_err(|e| annotate(e, "cannot write", path))
}

fn annotate(e: io::Error, what: &str, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{what} {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
50 23 0:40 / /mnt/with\\040space rw - ext4 /dev/sda1 rw
";

    const UNIFIED: &str = "\
29 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
";

    #[test]
    fn hybrid_hosts_are_v1_with_the_limit_on_the_pod() {
        let mounts = parse_mountinfo(HYBRID);
        assert_eq!(mounts.len(), 4);
        assert!(mounts[3].unified);
        let cg = Cgroups::from_mounts("/wisp/", mounts);
        assert!(!cg.is_v2());
        assert!(cg.memory_limit_on_pod());
        assert_eq!(
            cg.layout,
            Layout::V1 {
                memory: Some(PathBuf::from("/sys/fs/cgroup/memory"))
            }
        );
        assert_eq!(cg.container_path("ns+rev+r1"), "/wisp/ns+rev+r1/ctr");
        assert_eq!(
            cg.pod_dirs("c"),
            ["cpu", "memory", "pids", "unified"]
                .iter()
                .map(|m| PathBuf::from(format!("/sys/fs/cgroup/{m}/wisp/c")))
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn unified_hosts_are_v2() {
        let cg = Cgroups::from_mounts("wisp", parse_mountinfo(UNIFIED));
        assert!(cg.is_v2());
        assert!(!cg.memory_limit_on_pod());
        assert_eq!(
            cg.pod_dirs("c"),
            vec![PathBuf::from("/sys/fs/cgroup/wisp/c")]
        );
    }

    #[test]
    fn escaped_mount_points() {
        assert_eq!(unescape("/a\\040b\\134c"), "/a b\\c");
        assert_eq!(unescape("/plain\\"), "/plain\\");
    }

    #[test]
    fn oom_kill_counts() {
        let text = "low 0\nhigh 0\nmax 12\noom 3\noom_kill 2\noom_group_kill 0\n";
        assert_eq!(parse_oom_kills(text), Some(2));
        assert_eq!(parse_oom_kills("low 0\n"), None);
    }
}
