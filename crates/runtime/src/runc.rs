//! The runc command line, as the OCI backend uses it: `run` in the foreground (started by the
//! backend through `spawn.rs`), `exec` for probes, `delete --force` for clean-up and the sweep.
//! State lives under a root of wisp's own (`{data_dir}/runc`), so every container there is
//! wisp's and listing them needs no runc call (one directory per container).

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::process::Command;

/// Where runc is looked for when the configured name has no `/` and is not on `PATH` (the
/// daemon's `PATH` may lack the sbin directories).
const FALLBACK_DIRS: &[&str] = &[
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
];

/// The runc binary and wisp's state root.
#[derive(Debug, Clone)]
pub(crate) struct Runc {
    pub bin: PathBuf,
    pub root: PathBuf,
}

impl Runc {
    /// `runc --root ROOT` with output captured and stdin closed.
    pub(crate) fn command(&self) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--root")
            .arg(&self.root)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    /// Whether runc has state for container `id` (it is being created, runs, or stopped
    /// without being deleted).
    pub(crate) fn has_state(&self, id: &str) -> bool {
        self.root.join(id).exists()
    }

    /// The containers under the root.
    pub(crate) fn containers(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(&self.root) else {
            return Vec::new();
        };
        let mut ids: Vec<String> = entries
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        ids.sort();
        ids
    }

    /// `runc delete --force ID`: kills what runs of the container (SIGKILL) and removes its
    /// state and cgroup. A container runc does not know is not an error.
    pub(crate) async fn delete_force(&self, id: &str) -> Result<(), String> {
        if !self.has_state(id) {
            return Ok(());
        }
        let out = self
            .command()
            .args(["delete", "--force", id])
            .kill_on_drop(true)
            .output()
            .await
            .map_err(|e| format!("cannot run {}: {e}", self.bin.display()))?;
        if out.status.success() || !self.has_state(id) {
            return Ok(());
        }
        Err(format!(
            "runc delete --force {id} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }

    /// `runc exec ID ARGV...`: a command in the running container, with its environment,
    /// user and working directory (runc takes them from the bundle's process).
    pub(crate) fn exec(&self, id: &str, argv: &[String]) -> Command {
        let mut cmd = self.command();
        cmd.arg("exec").arg(id).args(argv);
        cmd
    }
}

/// Finds `name`: a path is taken as is; a bare name is looked up on `PATH`, then in the usual
/// system directories.
pub(crate) fn find_binary(name: &Path) -> Option<PathBuf> {
    let executable = |p: &Path| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if name.components().count() != 1 {
        return executable(name).then(|| name.to_path_buf());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(FALLBACK_DIRS.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| executable(p))
}

/// The first line of `runc --version` (e.g. `runc version 1.1.5+ds1`).
pub(crate) fn version(bin: &Path) -> Result<String, String> {
    let out = std::process::Command::new(bin)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} --version failed ({}): {}",
            bin.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string())
}

/// The last error runc wrote to its JSON log (`--log FILE --log-format json`), e.g. `runc
/// run failed: unable to start container process: exec: "app": executable file not found in
/// $PATH`.
pub(crate) fn last_error(log: &str) -> Option<String> {
    log.lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v.get("level").and_then(|l| l.as_str()) == Some("error"))
        .find_map(|v| v.get("msg").and_then(|m| m.as_str()).map(str::to_string))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_last_error_of_a_runc_log() {
        let log = r#"{"level":"warning","msg":"something","time":"2024-01-01T00:00:00Z"}
{"level":"error","msg":"runc run failed: unable to start container process: exec: \"nope\": executable file not found in $PATH","time":"2024-01-01T00:00:00Z"}
not json
"#;
        assert_eq!(
            last_error(log).as_deref(),
            Some(
                "runc run failed: unable to start container process: exec: \"nope\": executable file not found in $PATH"
            )
        );
        assert_eq!(last_error(r#"{"level":"info","msg":"x"}"#), None);
        assert_eq!(last_error(""), None);
    }

    #[test]
    fn finds_binaries() {
        assert_eq!(find_binary(Path::new("/nonexistent/runc")), None);
        assert_eq!(find_binary(Path::new("wisp-no-such-binary")), None);
        assert_eq!(
            find_binary(Path::new("sh")).map(|p| p.file_name().map(|n| n.to_owned())),
            Some(Some("sh".into()))
        );
    }
}
