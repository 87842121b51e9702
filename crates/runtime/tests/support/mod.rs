//! Helpers shared by the runtime's own tests and the testapp's (which includes this file by
//! path, because only the testapp package can name its binary).

use std::time::Duration;

use tokio::time::timeout;
use wisp_api::core::Container;
use wisp_runtime::{ReplicaHandle, ReplicaSpec, ReplicaStatus, RevisionRef};

/// Every wait in these tests ends by this deadline (a guard against hangs, not a timing check).
pub const DEADLINE: Duration = Duration::from_secs(30);

/// A replica of revision `{service}-00001` with the K_* variables a revision gets.
pub fn spec(id: &str, service: &str, container: Container, grace: Duration) -> ReplicaSpec {
    let revision = format!("{service}-00001");
    ReplicaSpec {
        id: id.into(),
        revision: RevisionRef::new("default", &revision),
        container,
        env: vec![
            ("K_SERVICE".into(), service.into()),
            ("K_CONFIGURATION".into(), service.into()),
            ("K_REVISION".into(), revision),
        ],
        port: 0,
        grace,
    }
}

/// Waits until the replica's status satisfies `f`, or panics naming `what`.
pub async fn wait_status(
    handle: &ReplicaHandle,
    what: &str,
    f: impl FnMut(&ReplicaStatus) -> bool,
) -> ReplicaStatus {
    let mut rx = handle.subscribe();
    match timeout(DEADLINE, rx.wait_for(f)).await {
        Ok(Ok(s)) => s.clone(),
        _ => panic!(
            "timed out waiting for {what}; status: {:?}",
            handle.status()
        ),
    }
}
